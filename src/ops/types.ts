// What an op is: the registry entry every backend reads (src/ops/index.ts).
// An op file holds the op's tracing (shape rule, builder API), its float64
// forward/backward for the interpreter, and how the CPU and CUDA backends
// render a fused group it heads (the kernels' loop nests live in templates/
// and src/codegen/cuda/kernels.ts).
import type { Node } from '../graph/ir.js';
import type { CpuOp } from '../codegen/cpu/ctx.js';
import type { CudaOp } from '../codegen/cuda/ctx.js';

export type F64 = Float64Array;

/** What a node's forward keeps for its backward, besides the input and output values. */
export interface Saved {
  /** maxpool2d: flat input index of each output's maximum */
  argmax?: Int32Array;
  /** batchnorm: normalised input and 1/√(var + eps) used */
  xhat?: F64;
  invstd?: F64;
  /** dropout: per-element multiplier (0 or 1/(1 − p)) */
  mask?: F64;
}

export interface InterpForward {
  /** batch size */
  B: number;
  train: boolean;
  /** dropout seed of this step */
  seed: number;
  /** input values, [B, ...shape of input i] */
  x: F64[];
  /** per-sample shapes of the inputs */
  xShape: number[][];
  /** the output, [B, ...node.shape], to overwrite */
  out: F64;
  /** float state n.params[i] (parameters, running statistics), live */
  param(i: number): F64;
  /** n.params[i] is an I64 counter: add one */
  bump(i: number): void;
  /** a dropout multiplier drawn elsewhere (PyTorch's, replayed by gen check), or undefined */
  mask(n: Node): F64 | undefined;
}

export interface InterpBackward {
  B: number;
  train: boolean;
  x: F64[];
  xShape: number[][];
  out: F64;
  /** gradient of the output, [B, ...node.shape] */
  dout: F64;
  saved: Saved;
  param(i: number): F64;
  /** gradient of input i to ADD into, zeroed at first use; null when nobody needs it */
  dx(i: number): F64 | null;
  /** gradient of parameter n.params[i] to ADD into; null for buffers */
  grad(i: number): F64 | null;
}

export interface OpDef<N extends Node> {
  /** float64 forward: overwrite c.out, return what backward needs */
  forward(n: N, c: InterpForward): Saved;
  /** float64 backward: ADD into c.dx(i) and c.grad(i) */
  backward(n: N, c: InterpBackward): void;
  /** how the CPU backend renders a fused group headed by this op */
  cpu: CpuOp<N>;
  /** how the CUDA backend renders a fused group headed by this op */
  cuda: CudaOp<N>;
}
