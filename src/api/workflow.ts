// The book's CIFAR-2 workflow as functions: the CLI verbs are thin wrappers.
import fs from 'node:fs';
import path from 'node:path';
import { loadCifar2, type RawSplits } from '../data/cifar.js';
import { makeDataset, type Dataset } from '../data/loader.js';
import { channelStats, normalize, type ChannelStats } from '../data/transforms.js';
import { loadImage } from '../io/image.js';
import { applyCheckpoint, loadCheckpointInto, readCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { accuracy, fit, softmax, argmax, NonFiniteLossError } from '../train/loop.js';
import type { TrainableModel } from '../train/model.js';
import type { StepOptions } from '../train/rules.js';
import { Rng } from '../util/rng.js';

export const CIFAR2_CLASSES = ['airplane', 'bird'];

export interface Cifar2Data {
  train: Dataset;
  val: Dataset;
  normalization: ChannelStats;
}

/**
 * CIFAR-2 normalised with the training set's per-channel mean and std (or the
 * given ones, e.g. a checkpoint's). `dir` holds CIFAR-10 binary batches; none → the shipped sample.
 */
export function cifar2Data(dir?: string, normalization?: ChannelStats): Cifar2Data {
  const raw: RawSplits = loadCifar2(dir);
  const stats = normalization ?? channelStats(raw.train.images);
  return { train: makeDataset(raw.train, stats), val: makeDataset(raw.val, stats), normalization: stats };
}

/** The training split's per-channel mean and std (what cifar2Data normalises with), without building the datasets. */
export function cifar2Normalization(dir?: string): ChannelStats {
  return channelStats(loadCifar2(dir).train.images);
}

export interface TrainOptions extends StepOptions {
  epochs: number;
  batchSize: number;
  seed: number;
  /** checkpoint written after every epoch (atomically) and at the end */
  save?: string;
  /** checkpoint to continue from (weights, momentum, shuffle RNG, epoch) */
  resume?: string;
  log?: (line: string) => void;
  onEpoch?: (epoch: number, loss: number) => void;
}

export interface TrainResult {
  losses: number[];
  epochs: number;
  seconds: number;
  trainAccuracy: number;
  valAccuracy: number;
}

/** Trains on data.train, then measures accuracy on both splits (the book's validate()). */
export async function train(model: TrainableModel, data: Cifar2Data, o: TrainOptions): Promise<TrainResult> {
  let rng = new Rng(o.seed);
  let startEpoch = 1;
  if (o.resume) {
    const ck = readCheckpoint(o.resume);
    if (!ck.meta?.rngState) throw new Error(`${o.resume} has no shuffle RNG state: not a tensorkiln training checkpoint`);
    // a different seed or batch size would silently change the dropout masks or the batches
    const saved = ck.meta.extra ?? {};
    for (const [k, flag, now] of [
      ['seed', '--seed', o.seed],
      ['batchSize', '--batch-size', o.batchSize],
    ] as const)
      if (saved[k] !== undefined && saved[k] !== now)
        throw new Error(`${o.resume} was trained with ${flag} ${saved[k]}; resume it with the same (got ${now})`);
    applyCheckpoint(ck, o.resume, model, true);
    rng = new Rng(Uint32Array.from(ck.meta.rngState));
    startEpoch = ck.meta.epoch + 1;
  }
  // the epoch o.save holds, for the message if training diverges
  let saved = o.resume && o.save && path.resolve(o.resume) === path.resolve(o.save) ? startEpoch - 1 : undefined;
  const save = (epoch: number) => {
    if (!o.save) return;
    saveCheckpoint(o.save, model, {
      epoch,
      normalization: data.normalization,
      rngState: [...rng.state],
      extra: { ...stepOf(o), batchSize: o.batchSize, seed: o.seed },
    });
    saved = epoch;
  };
  const started = performance.now();
  let losses: number[];
  try {
    losses = await fit(model, data.train, {
      ...o,
      rng,
      startEpoch,
      epochs: Math.max(0, o.epochs - startEpoch + 1),
      onEpoch: (epoch, loss) => {
        save(epoch);
        o.onEpoch?.(epoch, loss);
      },
    });
  } catch (e) {
    if (e instanceof NonFiniteLossError && o.save)
      e.message += saved ? `; ${o.save} holds epoch ${saved}` : `; nothing was saved to ${o.save} by this run`;
    throw e;
  }
  const seconds = (performance.now() - started) / 1000;
  return { losses, epochs: o.epochs, seconds, trainAccuracy: accuracy(model, data.train), valAccuracy: accuracy(model, data.val) };
}

function stepOf(o: StepOptions): StepOptions {
  return { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay, l1: o.l1, l2: o.l2 };
}

/** Accuracy on both splits, as the book's validate(). */
export function evaluate(model: TrainableModel, data: Cifar2Data): { train: number; val: number } {
  return { train: accuracy(model, data.train), val: accuracy(model, data.val) };
}

/** Loads weights from a checkpoint, a safetensors state_dict or a PyTorch .pt; returns its normalisation if it has one. */
export function loadWeights(model: TrainableModel, file: string): ChannelStats | undefined {
  return loadCheckpointInto(file, model).meta?.normalization;
}

export function saveWeights(model: TrainableModel, file: string, normalization?: ChannelStats, epoch = 0): void {
  saveCheckpoint(file, model, { epoch, normalization });
}

export interface Prediction {
  file: string;
  label: number;
  className: string;
  probabilities: number[];
}

/** Classifies image files (PNG/JPEG, resized and centre-cropped to 32×32) after the training normalisation. */
export function predict(model: TrainableModel, files: string[], normalization: ChannelStats, classes = CIFAR2_CLASSES): Prediction[] {
  if (!files.length) return [];
  const per = 3 * 32 * 32;
  const x = new Float32Array(files.length * per);
  files.forEach((f, i) => x.set(normalize(loadImage(f), normalization.mean, normalization.std), i * per));
  const out: Prediction[] = [];
  model.eval();
  for (let start = 0; start < files.length; start += model.maxBatch) {
    const size = Math.min(model.maxBatch, files.length - start);
    const logits = model.forward(x.subarray(start * per, (start + size) * per), size);
    const probs = softmax(logits, size);
    const labels = argmax(logits, size);
    const k = logits.length / size;
    for (let i = 0; i < size; i++)
      out.push({
        file: files[start + i],
        label: labels[i],
        className: classes[labels[i]] ?? String(labels[i]),
        probabilities: [...probs.subarray(i * k, (i + 1) * k)],
      });
  }
  return out;
}

/** The normalisation stored in a checkpoint, if any. */
export function checkpointNormalization(file: string): ChannelStats | undefined {
  if (!fs.existsSync(file)) throw new Error(`weights file not found: ${file}`);
  return readCheckpoint(file).meta?.normalization;
}
