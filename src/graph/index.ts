// The builder API, shaped like PyTorch's so the book's models port line by line:
//   import { nn, F, torch } from 'tensorkiln';
import * as F from './functional.js';
import { init } from './init.js';
import * as layers from './layers.js';
import { Module, ModuleList, Parameter, Buffer, Sequential } from './module.js';

export const nn = { Module, Sequential, ModuleList, Parameter, init, ...layers };
// Types under the nn namespace too, so `nn.Conv2d` works as a type.
export declare namespace nn {
  type Module = import('./module.js').Module;
  type Sequential = import('./module.js').Sequential;
  type ModuleList = import('./module.js').ModuleList;
  type Parameter = import('./module.js').Parameter;
  type Conv2d = import('./layers.js').Conv2d;
  type Linear = import('./layers.js').Linear;
  type LazyLinear = import('./layers.js').LazyLinear;
  type MaxPool2d = import('./layers.js').MaxPool2d;
  type AvgPool2d = import('./layers.js').AvgPool2d;
  type BatchNorm2d = import('./layers.js').BatchNorm2d;
  type Dropout = import('./layers.js').Dropout;
  type Dropout2d = import('./layers.js').Dropout2d;
  type Tanh = import('./layers.js').Tanh;
  type ReLU = import('./layers.js').ReLU;
  type Flatten = import('./layers.js').Flatten;
}
export { F };
export { manualSeed } from './init.js';
import { manualSeed } from './init.js';
export const torch = { tanh: F.tanh, relu: F.relu, add: F.add, flatten: F.flatten, manualSeed };
export { Tensor } from './tensor.js';
export { Module, Sequential, ModuleList, Parameter, Buffer };
export { trace, declaredInput, DEFAULT_INPUT } from './trace.js';
export { ModelError } from './errors.js';
export type { Graph, Node, StateInfo, HostTensor } from './ir.js';
