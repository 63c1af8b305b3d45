// Public API of tensorkiln.
export * from './graph/index.js';
