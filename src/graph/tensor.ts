// Symbolic tensors: what a model's forward sees while it is traced. They carry
// a per-sample shape and the id of the graph node that produces them.
import { numel } from './ir.js';
import { currentTracer } from './tracer.js';

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
    return currentTracer().view(this, dims);
  }

  /** Flattens every dimension after the batch, like `torch.flatten(x, 1)`. */
  flatten(startDim = 1): Tensor {
    return currentTracer().flatten(this, startDim);
  }

  /** Elementwise sum (skip connections): `out.add(x)` is PyTorch's `out + x`. */
  add(other: Tensor): Tensor {
    return currentTracer().binary('add', this, other);
  }

  relu(): Tensor {
    return currentTracer().unary('relu', this);
  }

  tanh(): Tensor {
    return currentTracer().unary('tanh', this);
  }

  toString(): string {
    return `Tensor[B, ${this.sampleShape.join(', ')}]`;
  }
}
