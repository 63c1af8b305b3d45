// tk_net — types of the compiled model Net (tensorkiln codegen 1). Generated file: do not edit.
/**
 * One optimizer step as torch.optim: SGD (dampening 0; momentum, Nesterov), Adam (weight decay added to the
 * gradient) or AdamW (decoupled decay), and penalties added to the loss: l1·Σ|p| + l2·Σp² over all parameters.
 */
export interface SgdOptions {
  /** learning rate (finite) */
  lr: number;
  /** default 'sgd' */
  optimizer?: 'sgd' | 'adam' | 'adamw' | undefined;
  /** SGD */
  momentum?: number | undefined;
  /** SGD, with momentum > 0 */
  nesterov?: boolean | undefined;
  /** Adam/AdamW, default [0.9, 0.999] */
  betas?: readonly [number, number] | undefined;
  /** Adam/AdamW, default 1e-8 */
  eps?: number | undefined;
  /** applied to every parameter, biases included */
  weightDecay?: number | undefined;
  l1?: number | undefined;
  l2?: number | undefined;
  loss?: LossOptions | undefined;
}

/** trainEpoch's options: a schedule's lr and momentum (SGD) or beta1 (Adam) for each step of the epoch. */
export interface EpochOptions extends SgdOptions {
  lrSteps?: Float64Array | undefined;
  momentumSteps?: Float64Array | undefined;
}

/** The loss of an input gradient: cross-entropy of the logits (default), or NLL of log-probabilities. */
export type LossOptions = { kind: 'cross_entropy'; labelSmoothing?: number | undefined } | { kind: 'nll' };

export interface StateTensor {
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

/** A tensor of a safetensors file. */
export interface FileTensor {
  dtype: 'F32' | 'F64' | 'I64' | 'I32';
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array;
}

/** A tap: the name it was asked by (a module path or '#node'), its graph node, its per-sample shape. */
export interface TapInfo {
  name: string;
  node: number;
  shape: number[];
}

export interface StateInfo {
  name: string;
  kind: 'param' | 'buffer';
  dtype: 'F32' | 'I64';
  shape: number[];
}

export interface ModelOptions {
  /** largest batch of any call (default and upper bound: info.maxBatch) */
  maxBatch?: number | undefined;
  /** base seed of the dropout masks (default 0) */
  seed?: number | undefined;
  /** safetensors file to start from (default INIT_WEIGHTS); null: all zeros, to load a state next */
  weights?: string | null | undefined;
}

/** Shapes and names of the model. */
export declare const info: {
  readonly model: string;
  readonly name: string;
  readonly prefix: string;
  readonly inputShape: [3, 32, 32];
  readonly classes: 2;
  readonly maxBatch: number;
  readonly state: readonly StateInfo[];
  readonly keys: Readonly<Record<string, string>>;
};

/** build/init.safetensors: the model's initial weights, written by gen build. */
export declare const INIT_WEIGHTS: string;

/** CPU feature flags of this machine (/proc/cpuinfo). */
export declare function cpuFlags(): Set<string> | null;
/** Throws if there is no build, or if it was compiled for instructions this CPU lacks. */
export declare function checkBuild(dir?: string): { addonPath: string; manifest: unknown };

declare global {
  interface SymbolConstructor {
    /** Symbol.dispose (Node 20.4+, for `using`), declared as @types/node does for libs that lack it. */
    readonly dispose: unique symbol;
  }
}

/** Net compiled for the CPU. Input x [batch, 3, 32, 32] float32 (NCHW, batch × 3072 values), output logits [batch, 2]. */
export declare class Model {
  /** Base seed of the dropout masks: training step s uses stepSeed(s). */
  seed: number;
  /** Training steps taken so far. */
  step: number;
  /** Correct predictions of the last trainStep. */
  lastCorrect?: number;
  /** Starts from options.weights (default INIT_WEIGHTS; throws when that file is missing). */
  constructor(options?: ModelOptions);
  /** A model starting from the weights in `file`: a safetensors state_dict, or a gen train checkpoint. */
  static load(file: string, options?: Omit<ModelOptions, 'weights'>): Model;
  get maxBatch(): number;
  get training(): boolean;
  /** Whether dispose() has freed the native model. */
  get disposed(): boolean;
  /** Heap bytes of the native model (reported to the GC); 0 once disposed. */
  get nativeBytes(): number;
  /** Frees the native memory now; any later call throws. */
  dispose(): void;
  /** dispose(), for `using`. */
  [Symbol.dispose](): void;
  get numThreads(): number;
  set numThreads(n: number);
  /** Train mode (BatchNorm batch statistics, dropout on), as PyTorch. */
  train(mode?: boolean): this;
  /** Eval mode (BatchNorm running statistics, dropout off). */
  eval(): this;
  /** Dropout seed of a training step. */
  stepSeed(step?: number): number;
  /** Logits [batch, 2] of x [batch, 3, 32, 32]. In train mode BatchNorm updates its running statistics, as PyTorch, and dropout uses seed (default stepSeed()). */
  forward(x: Float32Array, batch: number, seed?: number): Float32Array;
  /** Class indices [batch] and softmax probabilities [batch, 2] of x, in eval mode (the mode is restored). */
  predict(x: Float32Array, batch: number): { classes: Int32Array; probabilities: Float32Array };
  /** One SGD step on x [batch, 3, 32, 32], labels [batch] in [0, 2); returns the loss (mean cross-entropy + penalties). */
  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: SgdOptions): number;
  /** As trainStep, also returning the train-mode logits [batch, 2]; seed overrides the dropout seed. */
  trainStepDetailed(
    x: Float32Array,
    labels: Int32Array,
    batch: number,
    opts: SgdOptions,
    seed?: number,
  ): { loss: number; lossCE: number; correct: number; logits: Float32Array };
  /** Every step of an epoch in one native call: x [n, 3, 32, 32], labels [n], batches of order[] (indices < n; the last batch may be smaller). loss is the sum of the step losses. */
  trainEpoch(
    x: Float32Array,
    labels: Int32Array,
    n: number,
    batchSize: number,
    order: Uint32Array,
    opts: EpochOptions,
  ): { loss: number; correct: number; steps: number };
  /**
   * trainEpoch's augmentation from now on: torchvision RandomCrop(32, padding=crop) then RandomHorizontalFlip (crop 0,
   * flip false: off, the default); fill holds the padding value of each of the 3 channels. The CUDA backend refuses any.
   */
  setAugment(crop: number, flip: boolean, fill?: Float32Array | null): void;
  /** Writes the state_dict under PyTorch names (trainingState: also the optimiser state under 'train.' keys), atomically. */
  save(file: string, options?: { trainingState?: boolean | undefined; metadata?: Record<string, string> | undefined }): void;
  /** Strict load of a safetensors state_dict or gen train checkpoint (its 'train.' entries restore the optimiser); returns the file's metadata. */
  loadWeights(file: string): Record<string, string>;
  /** Optimiser and dropout-step state: 'step', 'momentum.<param>' (SGD), 'exp_avg.<param>', 'exp_avg_sq.<param>' and 'adam_step' (Adam). */
  trainingState(): Map<string, StateTensor>;
  loadTrainingState(state: Map<string, StateTensor>): void;
  /** Forget the optimizer state (momentum buffers, Adam moments and step count). */
  resetOptimizer(): void;
  /** Copies of every state_dict entry under PyTorch names. */
  stateDict(): Map<string, StateTensor>;
  /** Strict load by PyTorch names. */
  loadStateDict(state: Map<string, StateTensor> | Record<string, StateTensor>): void;
  /** Sets the given entries (state_dict keys or canonical names). */
  loadState(state: Map<string, StateTensor> | Record<string, StateTensor>): void;
  /** Every parameter and buffer once, by canonical name. */
  canonicalState(): Map<string, StateTensor>;
  /** Parameter gradients of the last train step. */
  grads(): Map<string, Float32Array>;
  /** PyTorch's dropout multipliers by module path, each [batch, values per sample], for the next train steps; null: back to the own masks. */
  replayDropout(masks: Map<string, Float32Array | Float64Array> | null, batch: number): void;
  /** d loss / d x of the last train step, [batch, C, H, W] (packages built with input gradients; otherwise throws). */
  inputGrad(): Float32Array;
  /** d loss / d x [batch, 3, 32, 32] without a step (no state changes), eval mode unless train; packages built with input gradients. */
  inputGradient(
    x: Float32Array,
    labels: Int32Array,
    batch: number,
    options?: { train?: boolean | undefined; seed?: number | undefined; loss?: LossOptions | undefined },
  ): { grad: Float32Array; logits: Float32Array; loss: number };
  /** Whether inputGradient() works (the package was built with input gradients). */
  get hasInputGradient(): boolean;
  /** The values kept readable after a forward (gen build --taps). */
  get taps(): readonly TapInfo[];
  /** A forward of x in the current mode, then every tap's value [batch, ...shape] by name. */
  activations(x: Float32Array, batch: number, seed?: number): Map<string, { shape: number[]; data: Float32Array }>;
}

export declare function create(options?: ModelOptions): Model;

/** Reads a safetensors file; any problem throws, naming the file. */
export declare function readSafetensors(file: string): { tensors: Map<string, FileTensor>; metadata: Record<string, string> };
/** Writes tensors and string metadata to a safetensors file, atomically. */
export declare function writeSafetensors(
  file: string,
  tensors: Map<string, FileTensor | StateTensor> | Record<string, FileTensor | StateTensor>,
  metadata?: Record<string, string>,
): void;
