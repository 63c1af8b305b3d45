// reshape: view / flatten. The values keep their order; every backend treats
// the output as the input's storage under another shape.
import { showShape } from '../graph/errors.js';
import { numel, type ReshapeNode } from '../graph/ir.js';
import { Module } from '../graph/module.js';
import { tensorOps, type Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import type { OpDef } from './types.js';

export function view(x: Tensor, dims: number[]): Tensor {
  const t = currentTracer();
  const n = x.numel();
  const call = `view(${dims.join(', ')})`;
  if (dims.length < 2 || dims[0] !== -1) t.fail(call, `the batch must stay the first dimension: write view(-1, ...)`);
  const rest = dims.slice(1);
  const free = rest.filter((d) => d === -1).length;
  // the batch is the one -1 already: PyTorch refuses view(-1, -1) ("only one dimension can be inferred")
  if (free > 0) t.fail(call, `only one dimension can be inferred, and the batch is it: give the sizes after it`);
  if (rest.some((d) => !Number.isInteger(d) || d < 1)) t.fail(call, `sizes after the batch must be positive integers`);
  const shape = rest;
  if (numel(shape) !== n)
    t.fail(
      call,
      `the input ${showShape(x.sampleShape)} has ${n} values per sample, not ${numel(shape)}`,
      `view(-1, ${n}) flattens it; if you expected ${numel(shape)}, check the pooling and channel counts before this line`,
    );
  return reshapeTo(x, shape);
}

export function flatten(x: Tensor, startDim = 1): Tensor {
  if (startDim !== 1) currentTracer().fail(`flatten(${startDim})`, 'only flatten(1) is supported: the batch stays the first dimension');
  return reshapeTo(x, [x.numel()]);
}

/** The same values under another per-sample shape (no node when the shape is unchanged). */
export function reshapeTo(x: Tensor, shape: number[]): Tensor {
  if (shape.join() === x.sampleShape.join()) return x;
  return currentTracer().record({ op: 'reshape', inputs: [x.id], shape, params: [] });
}

tensorOps.view = view;
tensorOps.flatten = flatten;

export class Flatten extends Module {
  constructor(readonly startDim = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim);
  }
}

/** nn.Identity: no op at all. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export const reshape: OpDef<ReshapeNode> = {
  forward(_n, c) {
    c.out.set(c.x[0]);
    return {};
  },
  backward(_n, c) {
    const d = c.dx(0);
    if (d) for (let i = 0; i < c.dout.length; i++) d[i] += c.dout[i];
  },
  cpu: {
    // a view of the input's storage: no forward work; the gradient passes through
    plan(g, c) {
      const x = g.head.inputs[0];
      return c.needsGrad(x) ? () => c.passThrough(g, x) : undefined;
    },
  },
  cuda: {
    forward: () => ['  // reshape: a view'],
    backward(g, c, gout) {
      const x = g.head.inputs[0];
      const L: string[] = [];
      if (c.need(x)) c.identity(x, gout, L);
      return L;
    },
  },
};
