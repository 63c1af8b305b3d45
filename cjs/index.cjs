// require('tensorkiln'): the ES module itself (Node >= 20.19 loads it from require()), or the
// instance `gen` shares with the CommonJS model files it loads through tsx (src/graph/load.ts),
// so that there is one nn.Module class in the process.
module.exports = globalThis[Symbol.for('tensorkiln')] ?? require('../dist/index.js');
