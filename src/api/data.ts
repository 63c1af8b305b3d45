// Datasets for the workflow: read a `--data` spec, normalise with the training
// split's statistics, and check that a model fits what was read.
import { shapeText, type ImageShape } from '../data/dataset.js';
import { makeDataset, type Dataset } from '../data/loader.js';
import { parseDataSpec, readData, type DataSpec, type ReadOptions } from '../data/source.js';
import { channelStats, type ChannelStats } from '../data/transforms.js';
import type { TrainableModel } from '../train/model.js';

/** What a prediction needs besides the weights; checkpoints carry it. */
export interface DataInfo {
  normalization: ChannelStats;
  /** label i is classes[i] */
  classes: string[];
}

/** Two normalised splits of one dataset, with its class names. */
export interface ImageData extends DataInfo {
  train: Dataset;
  val: Dataset;
  /** where it came from, `kind:dir` */
  source: string;
  /** the fraction of each class held out as `val`, when one image folder was split (checkpoints keep it) */
  valSplit?: number;
}

export interface LoadDataOptions extends ReadOptions {
  /** normalise with these (e.g. a checkpoint's) instead of the training split's */
  normalization?: ChannelStats;
}

/**
 * Reads a dataset (`kind:dir`, a folder whose kind is detected, or a DataSpec;
 * none → the shipped CIFAR-2 sample), normalised per channel with its training
 * split's mean and std unless `normalization` is given.
 */
export function loadData(spec?: string | DataSpec, o: LoadDataOptions = {}): ImageData {
  const raw = readData(typeof spec === 'object' ? spec : parseDataSpec(spec), o);
  if (!raw.train.labels.length) throw new Error(`${raw.source}: the training split is empty`);
  const stats = o.normalization ?? channelStats(raw.train.images, raw.train.shape);
  return {
    train: makeDataset(raw.train, stats),
    val: makeDataset(raw.val, stats),
    normalization: stats,
    classes: raw.classes,
    source: raw.source,
    ...(raw.valSplit !== undefined && { valSplit: raw.valSplit }),
  };
}

/**
 * CIFAR-2 normalised with the training set's per-channel mean and std (or the
 * given ones, e.g. a checkpoint's). `dir` holds CIFAR-10 binary batches; none → the shipped sample.
 */
export function cifar2Data(dir?: string, normalization?: ChannelStats): ImageData {
  return loadData(dir === undefined ? undefined : { kind: 'cifar2', dir }, { normalization });
}

/** The training split's per-channel mean and std (what cifar2Data normalises with). */
export function cifar2Normalization(dir?: string): ChannelStats {
  return cifar2Data(dir).normalization;
}

/** The per-sample input shape a model was traced with. */
export function modelInput(model: TrainableModel): ImageShape {
  const [c, h, w] = model.graph.inputShape;
  return [c, h, w];
}

/** The number of logits a model outputs per sample. */
export function modelClasses(model: TrainableModel): number {
  return model.graph.nodes[model.graph.output].shape[0];
}

/** Throws unless the model takes the data's images and outputs one logit per class. */
export function checkFits(model: TrainableModel, data: Pick<ImageData, 'train' | 'classes' | 'source'>): void {
  const name = model.graph.name;
  const input = modelInput(model);
  if (shapeText(input) !== shapeText(data.train.shape))
    throw new Error(`${name} takes ${shapeText(input)} inputs but ${data.source} holds ${shapeText(data.train.shape)} images`);
  const k = modelClasses(model);
  const n = data.classes.length;
  if (k !== n)
    throw new Error(
      `${name} outputs ${k} classes but ${data.source} has ${n} (${data.classes.join(', ')}); ` +
        (k < n ? `choose ${k} of them with --classes name,name,…${cifar2Hint(data.source, k)} or ` : '') +
        `use a model with ${n} outputs`,
    );
}

function cifar2Hint(source: string, k: number): string {
  return k === 2 && source.startsWith('cifar10:') ? ` (the book's airplanes and birds: --data cifar2:${source.slice(8)})` : '';
}

/** `--classes a,b,c` as a list (names trimmed); undefined stays undefined. */
export function parseClasses(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new Error(`--classes ${text}: empty class name; expected names separated by commas`);
  return names;
}
