// What the training loop needs from a model, whichever backend runs it
// (the interpreter, the compiled CPU addon, the CUDA addon).
import type { Graph, HostTensor } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import type { LossOptions } from '../ops/loss.js';
import type { EpochStepOptions, StepOptions } from './rules.js';
import type { Augment } from '../data/augment.js';

/** How to look inside: the mode (eval unless train), the dropout seed of a train-mode look, the loss of an input gradient. */
export interface LookOptions {
  train?: boolean;
  /** default: the seed of the model's next training step */
  seed?: number;
  loss?: LossOptions;
}

/** A value inside the model: its graph node and [batch, ...shape] floats. */
export interface Activation {
  node: number;
  shape: number[];
  data: Float32Array;
}

export interface InputGradientResult {
  /** d loss / d x, [batch, C, H, W] like x */
  grad: Float32Array;
  /** logits [batch, classes] of the same forward */
  logits: Float32Array;
  /** the mean loss over the batch */
  loss: number;
}

export interface EpochResult {
  /** sum over batches of the mean batch loss (penalties included) */
  lossSum: number;
  batches: number;
  /** training-mode predictions that matched the label */
  correct: number;
}

export interface TrainableModel {
  readonly graph: Graph;
  /** largest batch one call accepts */
  readonly maxBatch: number;
  /** the GPU a CUDA model runs on (undefined elsewhere) */
  readonly device?: string;
  train(): void;
  eval(): void;
  /** logits [batch, classes] in the current mode */
  forward(x: Float32Array, batch: number): Float32Array;
  /** one optimizer step on a batch; returns the loss */
  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: StepOptions): number;
  /** every step of one epoch, visiting `order` in batches of `batchSize` (last one partial), each batch augmented as `augment` says */
  trainEpoch(
    x: Float32Array,
    labels: Int32Array,
    order: Uint32Array,
    batchSize: number,
    opts: EpochStepOptions,
    augment?: Augment,
  ): EpochResult;
  /** parameters and buffers under every PyTorch state_dict key */
  stateDict(): Map<string, HostTensor>;
  loadStateDict(state: Map<string, HostTensor>): void;
  /** optimiser and RNG state, so a resumed run continues exactly */
  trainingState(): Map<string, HostTensor>;
  loadTrainingState(state: Map<string, HostTensor>): void;
  /**
   * The values of modules or nodes ('conv1', 'resblocks.3', '#12'; src/graph/taps.ts) after a
   * forward of x [batch, C, H, W], by the names asked; eval mode unless o.train. Changes no
   * state. A compiled backend builds a package keeping those values on first use (gen build --taps).
   */
  activations(x: Float32Array, names: readonly (string | number)[], o?: LookOptions): Promise<Map<string, Activation>>;
  /**
   * d loss / d x of (x, labels) without a step: weights, BatchNorm buffers and optimiser state stay
   * as they were. Eval mode unless o.train (attacks and saliency maps use eval mode).
   */
  inputGradient(x: Float32Array, labels: Int32Array, o?: LookOptions): Promise<InputGradientResult>;
}

/** The batch of x for a model of `graph`; an error names what does not fit. */
export function batchOf(graph: Graph, x: Float32Array, maxBatch: number, labels?: Int32Array): number {
  const per = numel(graph.inputShape);
  const batch = x.length / per;
  if (!Number.isInteger(batch) || batch < 1)
    throw new Error(`${graph.name}: x has ${x.length} values, not a whole batch of [${graph.inputShape.join(', ')}] (${per} each)`);
  if (batch > maxBatch) throw new Error(`${graph.name}: a batch of ${batch} is more than the model's max batch ${maxBatch}`);
  if (labels && labels.length !== batch) throw new Error(`${graph.name}: ${labels.length} labels for a batch of ${batch}`);
  return batch;
}
