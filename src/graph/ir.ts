// The static graph: what tracing a model's forward produces, and what every
// backend consumes (interpreter, C++ and CUDA code generators).
//
// Shapes are per sample: the batch is an implicit leading dimension, the only
// size left open until run time. A node's id is its index in `Graph.nodes` and
// also names its output value.

import type { ActName, ActParams } from '../ops/activations.js';

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

/**
 * PyTorch Conv2d (cross-correlation, zero padding), grouped and dilated:
 *   out[oc, oy, ox] = bias[oc] + Σ_{ic in oc's group, ky, kx} w[oc, ic, ky, kx] · in[g·inC/groups + ic, oy·sh − ph + ky·dh, ox·sw − pw + kx·dw]
 * params: [weight [outC, inC/groups, kh, kw], bias [outC]?]
 */
export interface Conv2dNode extends NodeBase {
  op: 'conv2d';
  attrs: {
    inC: number;
    outC: number;
    kh: number;
    kw: number;
    sh: number;
    sw: number;
    /** zero padding before (top, left) and after (bottom, right): they differ only for 'same' with an even kernel */
    ph: number;
    pw: number;
    ph2: number;
    pw2: number;
    dh: number;
    dw: number;
    groups: number;
    bias: boolean;
  };
}

/** y = x·Wᵀ + b on a [inF] input. params: [weight [outF,inF], bias [outF]?] */
export interface LinearNode extends NodeBase {
  op: 'linear';
  attrs: { inF: number; outF: number; bias: boolean };
}

/**
 * Max or average pooling, floor mode. Padding counts as -inf (max); for the
 * average it is counted in the divisor when countIncludePad (PyTorch's default).
 * Adaptive pools with exact divisors and x.mean([2, 3]) trace to these.
 */
export interface PoolNode extends NodeBase {
  op: 'maxpool2d' | 'avgpool2d';
  attrs: { kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; countIncludePad: boolean };
}

/**
 * BatchNorm1d/2d over a per-sample [C], [C, L] or [C, H, W] input (statistics over batch and the trailing dims).
 * params: [weight, bias, running_mean, running_var, num_batches_tracked].
 * Train: batch mean and biased variance normalise; running stats take the unbiased
 * variance with `momentum`; num_batches_tracked += 1. Eval: running stats.
 */
export interface BatchNormNode extends NodeBase {
  op: 'batchnorm';
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

/** An elementwise function of src/ops/activations.ts (activations, scalar arithmetic). */
export interface UnaryNode extends NodeBase {
  op: 'unary';
  attrs: { fn: ActName; p: ActParams };
}

/**
 * Elementwise a ∘ b with PyTorch's broadcasting over the per-sample dims
 * (aligned at the right; a dim of 1 stretches), e.g. [C, H, W] · [C, 1, 1].
 */
export interface BinaryNode extends NodeBase {
  op: 'binary';
  attrs: { fn: 'add' | 'sub' | 'mul' };
}

/** torch.cat(inputs, 1): inputs stacked along the channel dim (dim 0 per sample); other dims equal. */
export interface ConcatNode extends NodeBase {
  op: 'concat';
}

/** Same values, new per-sample shape (view / flatten of contiguous NCHW). */
export interface ReshapeNode extends NodeBase {
  op: 'reshape';
}

/** softmax or log-softmax over the features of a [n] input (dim 1 of [B, n]). */
export interface SoftmaxNode extends NodeBase {
  op: 'softmax';
  attrs: { log: boolean };
}

export type Node =
  | InputNode
  | Conv2dNode
  | LinearNode
  | PoolNode
  | BatchNormNode
  | DropoutNode
  | UnaryNode
  | BinaryNode
  | ConcatNode
  | ReshapeNode
  | SoftmaxNode;

export type OpKind = Node['op'];

/** The node type of an op kind. */
export type NodeOf<K extends OpKind> = Extract<Node, { op: K }>;

/** A module call of the traced forward: the path it was called under and the node of the value it returned. */
export interface ModuleCall {
  path: string;
  /** the module's state_dict name (a shared module's calls all have its first name) */
  module: string;
  /** its class, 'ResBlock' */
  type: string;
  /** the id the first node recorded inside the call got (= nodes.length before it; no node: > output) */
  first: number;
  output: number;
}

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
  /** the module calls of the forward, by the path each was called under (activations name them; src/graph/taps.ts) */
  calls?: ModuleCall[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[], batch = 'B'): string {
  return `[${[batch, ...shape].join(', ')}]`;
}
