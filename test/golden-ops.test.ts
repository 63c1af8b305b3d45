// The op × backend matrix against PyTorch (tinygrad's test_ops is the model):
// one tiny case per op and option (test/fixtures/golden-ops, made by
// tools/make_op_matrix.py with PyTorch 1.13), forward and backward — the
// gradients of the parameters and of the input — on the interpreter and the
// compiled CPU backend (test/golden-ops-cuda.test.ts: the CUDA kernels).
import path from 'node:path';
import { describe } from 'vitest';
import { opModels } from './fixtures/op-models.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('op matrix against PyTorch', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-ops'), opModels, ['interp', 'cpu'], 50));
