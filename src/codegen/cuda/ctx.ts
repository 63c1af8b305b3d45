// What the CUDA emitter offers an op's renderer (the `cuda` part of
// src/ops/<op>.ts): device buffers, the kernel registry, launches and the
// gradient flow. A renderer returns host-code lines of the step functions.
import type { BatchNormNode, Graph, Node } from '../../graph/ir.js';
import type { Contribution, Group } from '../middle.js';
import type { KernelSrc } from './kernels.js';

export interface CudaCtx {
  readonly graph: Graph;
  /** largest batch of one call */
  readonly maxB: number;
  /** the batch the tilings are chosen for */
  readonly refB: number;
  /** whether value v's gradient is needed */
  need(v: number): boolean;
  /** the package also runs the backward in eval mode (input gradients of a trained model): eval forwards keep what it reads */
  readonly evalBackward: boolean;
  /** the backward being rendered is the eval-mode one: BatchNorm with its running statistics, dropout the identity */
  readonly evalPass: boolean;
  /** device pointer of value v's activations in this mode (views resolve to their source) */
  val(v: number, train: boolean): string;
  /** a named device allocation (allocated once); returns `m-><name>` */
  alloc(name: string, bytes: number, type?: string): string;
  /** parameter, gradient, float buffer storage by canonical name; I64 counter by name */
  P(name: string): string;
  G(name: string): string;
  S(name: string): string;
  counter(name: string): string;
  /** the kernel's name, its source registered once per distinct text */
  kernel(k: KernelSrc): string;
  /** `TK_RUN(kernel, grid, block, stream, args)` */
  launch(kernel: string, grid: string, args: string[]): string;
  /** the row indirection argument of a kernel reading value v (only the model input is gathered) */
  rows(v: number): string;
  /** (backward) where a kernel's contribution to v's gradient goes: out = base + contribution */
  contrib(v: number): Contribution;
  /** (backward) v's gradient receives `src` unchanged: aliases or appends an add to L */
  identity(v: number, src: string, L: string[]): void;
  /** '1' when the parameter's gradient was already written by a later use (shared modules), else '0' */
  acc(param: string): string;
  /** the train-mode BatchNorm that is a conv group's only consumer (its statistics come from the conv's epilogue) */
  statsConsumer(g: Group): BatchNormNode | null;
  /** records that BatchNorm `bn` gets its statistics from a conv epilogue needing `partDoubles` partial sums */
  fuseStats(bn: BatchNormNode, partDoubles: number): void;
  hasFusedStats(bn: BatchNormNode): boolean;
  /** BatchNorm channel counts: sizes the shared reduction buffers */
  noteChannels(C: number): void;
  /** the last linear group that the head kernel (forward + loss + its backward) runs, if this is it */
  isHead(g: Group): boolean;
  setHeadBackward(h: { dx: string; base: string; acc: string }): void;
  /** conv weights whose gradient the SGD kernel sums from per-use partials */
  wgradUse(n: Extract<Node, { op: 'conv2d' }>, blocks: number): { buf: string; use: number; stride: number };
}

export interface CudaOp<N extends Node> {
  /** host lines launching the group's forward in train or eval mode */
  forward(g: Group<N>, c: CudaCtx, train: boolean): string[];
  /** host lines of its backward; gout is the gradient of the group's output */
  backward(g: Group<N>, c: CudaCtx, gout: string): string[];
}

/** A renderer for an op the CUDA backend has no kernels for: the build stops naming the op and its line. */
export function cudaUnsupported<N extends Node>(what: string): CudaOp<N> {
  const fail = (g: Group<N>): never => {
    const n = g.head;
    throw new Error(`the CUDA backend has no kernel for ${what} (${n.module || 'model'} at ${n.source})`);
  };
  return { forward: fail, backward: fail };
}
