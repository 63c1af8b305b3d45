// The model zoo (models/zoo.ts: the CIFAR-10 tutorial net, LeNet-5, VGG-style,
// ResNet-20, MobileNet-style, squeeze-excitation, DenseNet blocks) against
// PyTorch's golden cases (tools/make_zoo_golden.py): one SGD step with
// momentum and weight decay, eval and train, on every backend.
import path from 'node:path';
import { describe } from 'vitest';
import { zooModels } from '../models/zoo.js';
import { goldenMatrix } from './helpers/golden-matrix.js';

describe('model zoo against PyTorch', () =>
  goldenMatrix(path.resolve(import.meta.dirname, 'fixtures/golden-zoo'), zooModels, ['interp', 'cpu', 'cuda-emu'], 7));
