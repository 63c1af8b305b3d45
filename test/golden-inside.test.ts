// Looking inside against PyTorch (test/fixtures/golden-inside, made by
// tools/make_inside_golden.py): named activations, eval-mode input gradients and
// train-mode ones without a step, then a step that shows nothing changed before it,
// on the interpreter and the compiled CPU backend (the CUDA kernels: golden-inside-cuda.test.ts).
import path from 'node:path';
import { describe } from 'vitest';
import * as book from '../models/book.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('activations and input gradients against PyTorch', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-inside'), book, ['interp', 'cpu'], 4));
