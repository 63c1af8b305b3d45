// What the CPU planner offers an op's renderer (the `cpu` part of src/ops/<op>.ts),
// and the typed plan data it builds: kernels (instances of tk_runtime.h
// templates, deduplicated by signature) and the calls of the forward and
// backward passes, with their buffers.
import type { Graph, Node, UnaryNode } from '../../graph/ir.js';
import type { Group } from '../middle.js';

/** A call argument: a batch-sized arena buffer, a slot of the cross-thread reduction area, or a fixed C expression. */
export type Arg = { buf: string } | { red: number } | { expr: string };

export const NULL_ARG: Arg = { expr: 'nullptr' };

export interface Kernel {
  /** index in Plan.kernels; the C function is `k<id>_<kind>` */
  id: number;
  kind: string;
  /** C++ template function in tk_runtime.h */
  fn: string;
  /** template arguments, in order: ints, bools, or type names (activation functors) */
  consts: [string, string | number][];
  /** C parameters after the context */
  params: [string, string][];
  /** per-thread scratch floats, a C++ expression (may use `mb`, the max batch) */
  scratch: string;
  /** doc lines: what it computes, first use */
  doc: string[];
  signature: string;
}

export type KernelSpec = Omit<Kernel, 'id' | 'signature'>;

export interface Call {
  kernel: Kernel;
  args: Arg[];
  comment: string;
  /** C guard: the call runs only when this holds (train/eval variants) */
  when?: 'c.train' | '!c.train';
  /** all threads must be past the previous calls first (its output reuses memory laid out differently) */
  barrier?: boolean;
}

/** A call before the planner adds the group's comment. */
export type NewCall = Omit<Call, 'comment' | 'barrier'>;

/** A backward contribution to a value's gradient: the buffer, and whether the kernel adds to it. */
export interface CpuContribution {
  arg: Arg;
  accum: boolean;
  /** calls to run before the kernel (copying an aliased gradient into the value's own buffer) */
  before: Call[];
}

export interface CpuCtx {
  readonly graph: Graph;
  /** per-sample shape of value v */
  shape(v: number): number[];
  /** the activations of value v (the model input is `x`) */
  val(v: number): Arg;
  /** the window index (0..k·k−1) of each max-pooled output of value v */
  argmax(v: number): Arg;
  /** parameter or float buffer storage, by canonical name */
  param(name: string): Arg;
  /**
   * this thread's partial gradient of a parameter; `vec`: the kernel keeps VW
   * lanes of partial sums per element (the tuned conv kernels), summed at the end
   */
  pgrad(name: string, vec?: boolean): Arg;
  fbuf(name: string): Arg;
  ibuf(name: string): Arg;
  /** reserves `doubles` per thread of the cross-thread reduction area; returns the slot */
  reduce(doubles: number): number;
  needsGrad(v: number): boolean;
  /**
   * the backward also runs in eval mode (input gradients of a trained model): an op whose
   * backward differs by mode gives its train call `when: 'c.train'` and an eval twin after it
   */
  readonly evalBackward: boolean;
  /** the kernel of this signature, deduplicated */
  kernel(spec: KernelSpec): Kernel;
  /** dst (+)= src on N floats per sample */
  copyKernel(N: number, accum: boolean, doc: string): Kernel;
  /** the C type of an activation's functor (tk::ActNone for none) */
  act(a: UnaryNode | undefined): string;
  /** appends a forward call of the group */
  forward(g: Group, call: NewCall): void;
  /** (backward) the gradient of the group's output, to read */
  gout(g: Group): Arg;
  /** (backward) where a kernel's contribution to v's gradient goes */
  contrib(v: number): CpuContribution;
  /** (backward) calls passing the group output's gradient to v unchanged (nothing when it can alias) */
  passThrough(g: Group, v: number): Call[];
  /** (backward) a call of the group */
  call(g: Group, call: NewCall): Call;
}

/** How the CPU renders a group headed by an op: its forward calls now, its backward later (groups in reverse order). */
export interface CpuOp<N extends Node> {
  plan(g: Group<N>, c: CpuCtx): (() => Call[]) | undefined;
}

/** '[B, 16, 32, 32]' */
export function fmtShape(s: number[]): string {
  return `[B, ${s.join(', ')}]`;
}

/** 'conv1 · models/book.ts:12' */
export function where(n: Node): string {
  return `${n.module || '(root)'} · ${n.source}`;
}

/** A renderer for an op the CPU backend has no kernels for: the build stops naming the op and its line. */
export function cpuUnsupported<N extends Node>(what: string): CpuOp<N> {
  return {
    plan(g) {
      const n = g.head;
      throw new Error(`the CPU backend has no kernel for ${what} (${n.module || 'model'} at ${n.source})`);
    },
  };
}
