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
