// Symbolic tensors: what a model's forward sees while it is traced. They carry
// a per-sample shape and the id of the graph node that produces them. Their
// methods are PyTorch's; each op file (src/ops/) installs its tracing here.
import { numel } from './ir.js';
import { callerSource } from './source.js';

/** The tracing behind Tensor's methods, filled in by src/ops/ (which import this file, not the other way round). */
export interface TensorOps {
  view(x: Tensor, dims: number[]): Tensor;
  flatten(x: Tensor, startDim: number): Tensor;
  binary(fn: 'add' | 'sub' | 'mul', a: Tensor, b: Tensor | number): Tensor;
  unary(fn: string, x: Tensor, args: unknown[], call: string): Tensor;
  mean(x: Tensor, dims: number[], keepdim: boolean): Tensor;
  softmax(x: Tensor, dim: number, log: boolean): Tensor;
}

export const tensorOps = {} as TensorOps;

export class Tensor {
  constructor(
    /** id of the producing graph node */
    readonly id: number,
    /** per-sample shape; the batch dimension is implicit */
    readonly sampleShape: readonly number[],
  ) {}

  /** Full shape with the batch as -1, e.g. [-1, 16, 32, 32]. */
  get shape(): number[] {
    return [-1, ...this.sampleShape];
  }

  get ndim(): number {
    return this.sampleShape.length + 1;
  }

  /** Values per sample. */
  numel(): number {
    return numel(this.sampleShape);
  }

  /** `x.view(-1, n)` as in PyTorch; the batch must stay the leading dimension. */
  view(...dims: number[]): Tensor {
    return tensorOps.view(this, dims);
  }

  /** Flattens every dimension after the batch, like `torch.flatten(x, 1)`. */
  flatten(startDim = 1): Tensor {
    return tensorOps.flatten(this, startDim);
  }

  /** PyTorch's `x + y`: y a tensor (broadcast per sample, e.g. [C, 1, 1]) or a number. */
  add(other: Tensor | number): Tensor {
    return tensorOps.binary('add', this, other);
  }

  /** PyTorch's `x - y`. */
  sub(other: Tensor | number): Tensor {
    return tensorOps.binary('sub', this, other);
  }

  /** PyTorch's `x * y` (a squeeze-excitation gate [C, 1, 1], or a scalar). */
  mul(other: Tensor | number): Tensor {
    return tensorOps.binary('mul', this, other);
  }

  relu(): Tensor {
    return tensorOps.unary('relu', this, [], 'relu()');
  }

  tanh(): Tensor {
    return tensorOps.unary('tanh', this, [], 'tanh()');
  }

  sigmoid(): Tensor {
    return tensorOps.unary('sigmoid', this, [], 'sigmoid()');
  }

  /** Mean over dims of [B, C, H, W]: only [2, 3] (global average pooling), to [B, C] or with keepdim [B, C, 1, 1]. */
  mean(dims: number[], keepdim = false): Tensor {
    return tensorOps.mean(this, dims, keepdim);
  }

  softmax(dim: number): Tensor {
    return tensorOps.softmax(this, dim, false);
  }

  logSoftmax(dim: number): Tensor {
    return tensorOps.softmax(this, dim, true);
  }

  /** `x + y` in plain JS would turn tensors into strings: refuse it where it happens. */
  [Symbol.toPrimitive](): never {
    throw new Error(
      `${callerSource()}: a tensor ${this.toString()} was used in plain JS arithmetic or a string (x + y, x * 2, \`\${x}\`): write x.add(y), x.mul(2) or torch.add(x, y)`,
    );
  }

  toString(): string {
    return `Tensor[B, ${this.sampleShape.join(', ')}]`;
  }
}
