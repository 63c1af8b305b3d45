// torch.nn.functional and the torch.* ops the book's forwards use.
import { dropout, pool, type PoolOptions } from './layers.js';
import type { Tensor } from './tensor.js';

type Pair = number | [number, number];

export function maxPool2d(x: Tensor, kernelSize: Pair, stride?: Pair, padding: Pair = 0): Tensor {
  return pool('maxpool2d', x, kernelSize, { stride: stride ?? kernelSize, padding } satisfies PoolOptions);
}

export function avgPool2d(x: Tensor, kernelSize: Pair, stride?: Pair, padding: Pair = 0): Tensor {
  return pool('avgpool2d', x, kernelSize, { stride: stride ?? kernelSize, padding });
}

export const tanh = (x: Tensor): Tensor => x.tanh();
export const relu = (x: Tensor): Tensor => x.relu();
export const add = (a: Tensor, b: Tensor): Tensor => a.add(b);
export const flatten = (x: Tensor, startDim = 1): Tensor => x.flatten(startDim);

/** With training=false the op is left out of the graph, as PyTorch makes it the identity. */
export function dropout2d(x: Tensor, p = 0.5, training = true): Tensor {
  return training ? dropout(x, p, true) : x;
}

export function dropout1d(x: Tensor, p = 0.5, training = true): Tensor {
  return training ? dropout(x, p, false) : x;
}

export { dropout1d as dropout };
