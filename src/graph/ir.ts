// The static graph: what tracing a model's forward produces, and what every
// backend consumes (interpreter, C++ and CUDA code generators).
//
// Shapes are per sample: the batch is an implicit leading dimension, the only
// size left open until run time. A node's id is its index in `Graph.nodes` and
// also names its output value.

export type Dtype = 'F32' | 'I64';

/** A concrete host tensor; structurally compatible with src/io's safetensors Tensor. */
export interface HostTensor {
  dtype: Dtype;
  shape: number[];
  data: Float32Array | BigInt64Array;
}

interface NodeBase {
  id: number;
  /** ids of the nodes whose outputs this node reads */
  inputs: number[];
  /** output shape per sample, e.g. [16, 32, 32] or [32] */
  shape: number[];
  /** canonical state names this node reads (parameters first, then buffers) */
  params: string[];
  /** path of the module whose call produced the node: 'conv1', 'resblocks.0.conv', '' for the root */
  module: string;
  /** where in the model file the op was written, e.g. 'models/book.ts:42' */
  source: string;
}

/** The model input, [C, H, W] per sample. Always node 0. */
export interface InputNode extends NodeBase {
  op: 'input';
}

/** PyTorch Conv2d (cross-correlation). params: [weight [outC,inC,kh,kw], bias [outC]?] */
export interface Conv2dNode extends NodeBase {
  op: 'conv2d';
  attrs: { inC: number; outC: number; kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; bias: boolean };
}

/** y = x·Wᵀ + b on a [inF] input. params: [weight [outF,inF], bias [outF]?] */
export interface LinearNode extends NodeBase {
  op: 'linear';
  attrs: { inF: number; outF: number; bias: boolean };
}

/** Max or average pooling, floor mode. Padding counts as -inf (max) or 0 included in the count (avg, PyTorch's default). */
export interface PoolNode extends NodeBase {
  op: 'maxpool2d' | 'avgpool2d';
  attrs: { kh: number; kw: number; sh: number; sw: number; ph: number; pw: number };
}

/**
 * BatchNorm2d. params: [weight, bias, running_mean, running_var, num_batches_tracked].
 * Train: batch mean and biased variance normalise; running stats take the unbiased
 * variance with `momentum`; num_batches_tracked += 1. Eval: running stats.
 */
export interface BatchNormNode extends NodeBase {
  op: 'batchnorm2d';
  attrs: { C: number; eps: number; momentum: number };
}

/**
 * Dropout (elementwise) or Dropout2d (whole channels). Identity in eval.
 * Train: keep where hashUniform(seed, stream, index) >= p, scale kept by 1/(1-p);
 * index = b·C + c for channelwise, else b·numel + i (numel per sample).
 * `stream` is distinct per dropout node so masks are independent.
 */
export interface DropoutNode extends NodeBase {
  op: 'dropout';
  attrs: { p: number; channelwise: boolean; stream: number };
}

export interface UnaryNode extends NodeBase {
  op: 'relu' | 'tanh';
}

/** Elementwise sum of two same-shaped inputs (skip connections). */
export interface AddNode extends NodeBase {
  op: 'add';
}

/** Same values, new per-sample shape (view / flatten of contiguous NCHW). */
export interface ReshapeNode extends NodeBase {
  op: 'reshape';
}

export type Node = InputNode | Conv2dNode | LinearNode | PoolNode | BatchNormNode | DropoutNode | UnaryNode | AddNode | ReshapeNode;

export type OpKind = Node['op'];

/** A parameter or buffer of the model, by its canonical (first) state_dict name. */
export interface StateInfo {
  name: string;
  shape: number[];
  dtype: Dtype;
  kind: 'param' | 'buffer';
}

export interface Graph {
  /** model class name, for messages and generated names */
  name: string;
  /** per-sample input shape, [C, H, W] */
  inputShape: number[];
  /** topologically ordered; nodes[0] is the input */
  nodes: Node[];
  /** id of the node whose output is the model output (logits, [classes]) */
  output: number;
  /** canonical state in PyTorch state_dict order, de-duplicated */
  state: StateInfo[];
  /** every state_dict key (shared modules repeat) → canonical name */
  keys: Record<string, string>;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[], batch = 'B'): string {
  return `[${[batch, ...shape].join(', ')}]`;
}
