// The op matrix (test/golden-ops.test.ts) on the CUDA kernels, compiled for the CPU emulator.
import path from 'node:path';
import { describe } from 'vitest';
import { opModels } from './fixtures/op-models.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('op matrix against PyTorch', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-ops'), opModels, ['cuda-emu'], 50));
