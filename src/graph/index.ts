// The builder API, shaped like PyTorch's so models port line by line:
//   import { nn, F, torch } from 'tensorkiln';
// Each layer and function comes from its op's file in src/ops/; the
// activations' modules and functions are made from src/ops/activations.ts.
import { BatchNorm1d, BatchNorm2d } from '../ops/batchnorm.js';
import { add, mul, sub } from '../ops/binary.js';
import { cat } from '../ops/concat.js';
import { Conv2d } from '../ops/conv2d.js';
import { Dropout, Dropout2d, dropout2dFn, dropoutFn } from '../ops/dropout.js';
import { LazyLinear, Linear } from '../ops/linear.js';
import {
  AdaptiveAvgPool2d,
  AdaptiveMaxPool2d,
  AvgPool2d,
  MaxPool2d,
  adaptiveAvgPool2dFn,
  adaptiveMaxPool2dFn,
  avgPool2dFn,
  maxPool2dFn,
  mean,
} from '../ops/pool.js';
import { Flatten, Identity, flatten } from '../ops/reshape.js';
import { LogSoftmax, Softmax, logSoftmaxFn, softmaxFn } from '../ops/softmax.js';
import { activationFunctions, activationMethods, activationModules } from '../ops/unary.js';
import { init, manualSeed } from './init.js';
import { callerSource } from './source.js';
import { Buffer, Module, ModuleList, Parameter, Sequential } from './module.js';

/**
 * An unknown name (torch.roll, F.interpolate, nn.LSTM) is an error naming it
 * and the model.ts line, not `undefined is not a function` later.
 */
function strict<T extends object>(what: string, api: T): T {
  const quiet = new Set(['then', 'toJSON', 'constructor', 'prototype', '__esModule', 'default']);
  return new Proxy(api, {
    get(target, prop, receiver) {
      if (typeof prop === 'symbol' || prop in target || quiet.has(prop)) return Reflect.get(target, prop, receiver);
      throw new Error(
        `${what}.${prop} at ${callerSource()}: not supported by tensorkiln (it has: ${Object.keys(target).sort().join(', ')})`,
      );
    },
  });
}

export const nn = strict('nn', {
  Module,
  Sequential,
  ModuleList,
  Parameter,
  init,
  Conv2d,
  Linear,
  LazyLinear,
  MaxPool2d,
  AvgPool2d,
  AdaptiveAvgPool2d,
  AdaptiveMaxPool2d,
  BatchNorm1d,
  BatchNorm2d,
  Dropout,
  Dropout2d,
  Flatten,
  Identity,
  Softmax,
  LogSoftmax,
  ...activationModules,
});
// Types under the nn namespace too, so `nn.Conv2d` works as a type.
export declare namespace nn {
  type Module = import('./module.js').Module;
  type Sequential = import('./module.js').Sequential;
  type ModuleList = import('./module.js').ModuleList;
  type Parameter = import('./module.js').Parameter;
  type Conv2d = import('../ops/conv2d.js').Conv2d;
  type Linear = import('../ops/linear.js').Linear;
  type LazyLinear = import('../ops/linear.js').LazyLinear;
  type MaxPool2d = import('../ops/pool.js').MaxPool2d;
  type AvgPool2d = import('../ops/pool.js').AvgPool2d;
  type AdaptiveAvgPool2d = import('../ops/pool.js').AdaptiveAvgPool2d;
  type AdaptiveMaxPool2d = import('../ops/pool.js').AdaptiveMaxPool2d;
  type BatchNorm1d = import('../ops/batchnorm.js').BatchNorm1d;
  type BatchNorm2d = import('../ops/batchnorm.js').BatchNorm2d;
  type Dropout = import('../ops/dropout.js').Dropout;
  type Dropout2d = import('../ops/dropout.js').Dropout2d;
  type Flatten = import('../ops/reshape.js').Flatten;
  type Identity = import('../ops/reshape.js').Identity;
  type Softmax = import('../ops/softmax.js').Softmax;
  type LogSoftmax = import('../ops/softmax.js').LogSoftmax;
}

/** torch.nn.functional */
export const F = strict('F', {
  ...activationFunctions,
  maxPool2d: maxPool2dFn,
  avgPool2d: avgPool2dFn,
  adaptiveAvgPool2d: adaptiveAvgPool2dFn,
  adaptiveMaxPool2d: adaptiveMaxPool2dFn,
  dropout: dropoutFn,
  dropout1d: dropoutFn,
  dropout2d: dropout2dFn,
  softmax: softmaxFn,
  logSoftmax: logSoftmaxFn,
  flatten,
  add,
});

export const torch = strict('torch', {
  ...activationMethods,
  add,
  sub,
  mul,
  cat,
  flatten,
  mean,
  softmax: softmaxFn,
  logSoftmax: logSoftmaxFn,
  manualSeed,
});

export { manualSeed };
export { Tensor } from './tensor.js';
export { Module, Sequential, ModuleList, Parameter, Buffer };
export { trace, declaredInput, DEFAULT_INPUT } from './trace.js';
export { ModelError } from './errors.js';
export type { Graph, Node, StateInfo, HostTensor } from './ir.js';
