// Activations and input gradients (test/golden-inside.test.ts) on the CUDA kernels, compiled for the CPU emulator.
import path from 'node:path';
import { describe } from 'vitest';
import * as book from '../models/book.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('activations and input gradients against PyTorch', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-inside'), book, ['cuda-emu'], 4));
