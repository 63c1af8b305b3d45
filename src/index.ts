// Public API of tensorkiln.
export * from './graph/index.js';
// The layer classes by name too (nn.Conv2d is Conv2d): a user's declaration emit must name a field's type.
export * from './graph/layers.js';
