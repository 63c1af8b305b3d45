// torch.optim's SGD-Nesterov, Adam, AdamW and two schedules against PyTorch
// (test/fixtures/golden-optim, 10 steps each) on every backend.
import path from 'node:path';
import { describe } from 'vitest';
import { bookModels } from '../models/book.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('optimizer golden cases', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-optim'), bookModels, ['interp', 'cpu', 'cuda-emu'], 6));
