// Public API of tensorkiln.
export * from './graph/index.js';
// The layer classes by name too (nn.Conv2d is Conv2d): a user's declaration emit must name a
// field's type, and it cannot through nn's type aliases (TS2742). test/dts.test.ts keeps the list whole.
export { Conv2d } from './ops/conv2d.js';
export { Linear, LazyLinear } from './ops/linear.js';
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d } from './ops/pool.js';
export { BatchNorm1d, BatchNorm2d } from './ops/batchnorm.js';
export { Dropout, Dropout2d } from './ops/dropout.js';
export { Flatten, Identity } from './ops/reshape.js';
export { Softmax, LogSoftmax } from './ops/softmax.js';

// One instance per process: tsx compiles what a CommonJS model.ts requires, this package's ES
// modules too, into a second copy with its own tracer and nn.Module class. require('tensorkiln')
// (cjs/index.cjs) returns this instance once any ES import has loaded it.
import * as self from './index.js';
(globalThis as Record<symbol, unknown>)[Symbol.for('tensorkiln')] ??= self;
