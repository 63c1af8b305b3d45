// What the training loop needs from a model, whichever backend runs it
// (the interpreter, the compiled CPU addon, the CUDA addon).
import type { Graph, HostTensor } from '../graph/ir.js';
import type { StepOptions } from './rules.js';

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
  /** one SGD step on a batch; returns the loss */
  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: StepOptions): number;
  /** every step of one epoch, visiting `order` in batches of `batchSize` (last one partial) */
  trainEpoch(x: Float32Array, labels: Int32Array, order: Uint32Array, batchSize: number, opts: StepOptions): EpochResult;
  /** parameters and buffers under every PyTorch state_dict key */
  stateDict(): Map<string, HostTensor>;
  loadStateDict(state: Map<string, HostTensor>): void;
  /** optimiser and RNG state, so a resumed run continues exactly */
  trainingState(): Map<string, HostTensor>;
  loadTrainingState(state: Map<string, HostTensor>): void;
}
