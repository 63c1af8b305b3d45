// The workflow API: open a model on a backend, read data, then train, evaluate, predict.
export { openModel, openModule, type BackendName, type OpenOptions, type ModelSource } from './open.js';
export {
  loadData,
  cifar2Data,
  cifar2Normalization,
  checkFits,
  modelClasses,
  modelInput,
  type DataInfo,
  type ImageData,
  type LoadDataOptions,
} from './data.js';
export {
  train,
  predict,
  loadWeights,
  saveWeights,
  weightsInfo,
  type TrainOptions,
  type TrainResult,
  type Prediction,
  type PredictOptions,
  type Ranked,
  type WeightsInfo,
} from './workflow.js';
export { evaluate, evaluateReport, confusionMatrix, type EvalReport, type SplitReport, type ClassReport } from './evaluate.js';
export { CIFAR10_CLASSES, loadCifar2, loadCifar10, cifar2 } from '../data/cifar.js';
export { FASHION_MNIST_CLASSES, MNIST_CLASSES, loadIdx, readIdx } from '../data/idx.js';
export { loadImageFolder } from '../data/folder.js';
export { DATA_KINDS, parseDataSpec, readData, type DataKind, type DataSpec, type ReadOptions } from '../data/source.js';
export { selectClasses, type ImageShape, type RawImages, type RawSplits } from '../data/dataset.js';
export { makeDataset, batches, type Dataset } from '../data/loader.js';
export { channelStats, normalize, type ChannelStats } from '../data/transforms.js';
export type { TrainableModel } from '../train/model.js';

// One instance per process, as src/index.ts: require('tensorkiln/api') (cjs/api.cjs) returns this one.
import * as self from './index.js';
(globalThis as Record<symbol, unknown>)[Symbol.for('tensorkiln/api')] ??= self;
