// require('tensorkiln/api'): as cjs/index.cjs.
module.exports = globalThis[Symbol.for('tensorkiln/api')] ?? require('../dist/api/index.js');
