// What a backend must offer to be checked against PyTorch's golden cases and
// against the reference interpreter. The interpreter implements it; the
// compiled C++ and CUDA backends implement it too (float32 arrays are fine).
import type { Graph, HostTensor } from '../graph/ir.js';
import type { StepOptions } from '../train/rules.js';
import type { LossOptions } from '../ops/loss.js';
import type { Tap } from '../graph/taps.js';

export type FloatArray = Float32Array | Float64Array;

export interface ForwardOptions {
  /** train mode: BatchNorm uses (and updates) batch statistics, dropout masks apply */
  train: boolean;
  /** dropout seed (see DropoutNode in src/graph/ir.ts); 0 when omitted */
  seed?: number;
}

export interface StepResult {
  /** cross-entropy plus the l1/l2 penalties of the pre-step parameters */
  loss: number;
  /** cross-entropy alone */
  lossCE: number;
  /** train-mode logits [batch, classes] of this step's forward */
  logits: FloatArray;
  /** gradient of `loss` (penalties included, weight decay not) by canonical parameter name, as PyTorch's .grad */
  grads: Map<string, FloatArray>;
  /** d loss / d x [batch, C, H, W], from backends that compute it (the interpreter; packages built with input gradients) */
  inputGrad?: FloatArray;
}

export interface Backend {
  /** Replaces every parameter and buffer; keys are canonical names (graph.state) or state_dict keys. */
  loadState(state: Map<string, HostTensor>): void;
  /** Logits [batch, classes] of input x [batch, C, H, W]. Train mode updates BatchNorm buffers. */
  forward(x: FloatArray, batch: number, opts: ForwardOptions): FloatArray;
  /** forward(train) → cross-entropy + penalties → backward → one SGD step (momentum buffers kept by the backend). */
  trainStep(x: FloatArray, labels: ArrayLike<number>, batch: number, step: StepOptions, seed?: number): StepResult;
  /** Every parameter and buffer by canonical name: F32, and I64 for num_batches_tracked. */
  stateDict(): Map<string, HostTensor>;
  /** The optimizer state under torch.optim's names: `<param>.momentum_buffer`, `.exp_avg`, `.exp_avg_sq`, `.step`. */
  optimizerState?(): Map<string, OptimizerTensor>;
  /** Frees native resources, if any. */
  dispose?(): void;
  /**
   * Dropout multipliers drawn by PyTorch, by module path ([batch, ...shape] each),
   * used by the next train-mode forwards instead of the backend's own masks.
   * A golden case with dropout skips the train-mode checks on a backend without it.
   */
  replayDropout?(masks: Map<string, FloatArray>): void;
  /** The values of `nodes` ([batch, ...shape] each) after a forward of x; changes no state. */
  activations?(x: FloatArray, batch: number, nodes: number[], opts: ForwardOptions): FloatArray[];
  /** d loss / d x without a step; changes no state. */
  inputGradient?(x: FloatArray, labels: ArrayLike<number>, batch: number, opts: ProbeOptions): InputGradient;
}

export interface OptimizerTensor {
  shape: number[];
  data: FloatArray | BigInt64Array;
}

/** A look inside that changes no state: no weights, no BatchNorm buffers, no optimiser state. */
export interface ProbeOptions extends ForwardOptions {
  /** the loss whose input gradient is asked for (default cross-entropy) */
  loss?: LossOptions;
}

export interface InputGradient {
  /** d loss / d x [batch, C, H, W] of the mean loss over the batch */
  grad: FloatArray;
  /** logits [batch, classes] of the same forward */
  logits: FloatArray;
  /** the mean loss (no penalties: they do not depend on x) */
  loss: number;
}

/** What a check asks of a backend beyond the basics. */
export interface BackendNeeds {
  /** train steps report inputGrad; inputGradient() works */
  inputGrad?: boolean;
  /** activations() reads these values */
  taps?: Tap[];
}

export type BackendFactory = (graph: Graph, needs?: BackendNeeds) => Backend | Promise<Backend>;
