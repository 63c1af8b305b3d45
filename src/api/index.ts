// The workflow API: open a model on a backend, then train, evaluate, predict.
export { openModel, openModule, type BackendName, type OpenOptions, type ModelSource } from './open.js';
export {
  cifar2Data,
  cifar2Normalization,
  train,
  evaluate,
  predict,
  loadWeights,
  saveWeights,
  CIFAR2_CLASSES,
  type Cifar2Data,
  type TrainOptions,
  type TrainResult,
  type Prediction,
} from './workflow.js';
export { loadCifar2, loadCifar10, cifar2 } from '../data/cifar.js';
export { makeDataset, batches, type Dataset } from '../data/loader.js';
export { channelStats, normalize, type ChannelStats } from '../data/transforms.js';
export type { TrainableModel } from '../train/model.js';
