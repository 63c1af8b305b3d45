// The workflow as functions (train, predict, weights): the CLI verbs are thin wrappers.
import fs from 'node:fs';
import path from 'node:path';
import { numel } from '../data/dataset.js';
import { loadImageBytes } from '../data/image-input.js';
import { normalize, type ChannelStats } from '../data/transforms.js';
import {
  applyCheckpoint,
  loadCheckpointInto,
  lockCheckpoint,
  readCheckpoint,
  saveCheckpoint,
  type CheckpointMeta,
  type ReadOptions,
} from '../train/checkpoint.js';
import { accuracy, fit, softmax, NonFiniteLossError, type EpochStats } from '../train/loop.js';
import { resolveAugment, type Augment, type AugmentOptions } from '../data/augment.js';
import { shapeText } from '../data/dataset.js';
import { holdOut, type Dataset } from '../data/loader.js';
import { checkEarlyStop, EarlyStop, type EarlyStopOptions, type EarlyStopState } from '../train/early-stop.js';
import { readRunLog, writeRunLog, type EpochRecord, type RunInfo } from '../train/log.js';
import type { TrainableModel } from '../train/model.js';
import type { StepOptions } from '../train/rules.js';
import { describeSchedule, scheduleUsesLength, type ScheduleOptions } from '../train/schedule.js';
import { Rng } from '../util/rng.js';
import { checkFits, modelClasses, modelInput, type DataInfo, type ImageData } from './data.js';

export interface TrainOptions extends StepOptions {
  /** the learning-rate schedule over the whole run (constant without) */
  schedule?: ScheduleOptions;
  epochs: number;
  batchSize: number;
  seed: number;
  /** checkpoint written after every epoch (atomically) and at the end; locked for the run (one writer per path) */
  save?: string;
  /** checkpoint to continue from (weights, momentum, shuffle RNG, epoch) */
  resume?: string;
  /** how the resumed checkpoint is read (allowNonfinite) */
  read?: ReadOptions;
  log?: (line: string) => void;
  onEpoch?: (epoch: number, loss: number, stats: EpochStats) => void;
  /** a per-epoch JSON-lines log (src/train/log.ts), with the validation accuracy after each epoch; `run` describes the run in it */
  runLog?: { file: string; run: Partial<RunInfo> };
  /** random crop (padding `crop`, filled black) and horizontal flip of every training batch; off by default (the book's loop) */
  augment?: AugmentOptions;
  /**
   * validation after every epoch (loss and accuracy in the log lines, the run log and onEpoch's stats): a fraction
   * of each class of data.train held out from training, 'val' for data.val, or a Dataset normalised as data
   */
  val?: number | 'val' | Dataset;
  /** stop when the validation loss (or accuracy) has not improved for `patience` epochs; needs `val` */
  earlyStop?: EarlyStopOptions;
  /** the checkpoint of the best validation epoch (earlyStop's monitor and minDelta), written atomically when it improves; needs `val` */
  saveBest?: string;
}

export interface TrainResult {
  losses: number[];
  epochs: number;
  seconds: number;
  trainAccuracy: number;
  valAccuracy: number;
  /** what o.save holds at the end (the initial state at epoch 0 when no epoch ran) */
  saved?: { file: string; epoch: number };
  /** images trained on per epoch: data.train less a held-out validation fraction */
  images: number;
  /** images validated on after each epoch (absent without val) */
  valImages?: number;
  /** the epoch early stopping ended training after (absent when it ran every epoch) */
  stoppedEpoch?: number;
  /** the best validation epoch of the run (with val), and the file o.saveBest holds it in */
  best?: { epoch: number; valLoss: number; valAccuracy: number; file?: string };
}

/** Trains on data.train, then measures accuracy on both splits (the book's validate()). */
export async function train(model: TrainableModel, data: ImageData, o: TrainOptions): Promise<TrainResult> {
  checkFits(model, data);
  checkValidation(o);
  const release = o.save ? lockCheckpoint(o.save, 'training') : undefined;
  let releaseBest: (() => void) | undefined;
  try {
    releaseBest = o.saveBest ? lockCheckpoint(o.saveBest, 'saving the best epoch') : undefined;
    return await trainLocked(model, data, o);
  } finally {
    releaseBest?.();
    release?.();
  }
}

/** Early stopping and the best checkpoint need a validation set; the best checkpoint is a file of its own. */
function checkValidation(o: TrainOptions): void {
  if (o.earlyStop) checkEarlyStop(o.earlyStop);
  if (typeof o.val === 'number' && !(o.val > 0 && o.val < 1)) throw new Error(`val: the held-out fraction must be in (0, 1), got ${o.val}`);
  if (o.val === undefined && (o.earlyStop || o.saveBest))
    throw new Error(`${o.earlyStop ? 'early stopping' : 'saveBest'} needs a validation set (val: a fraction, 'val' or a Dataset)`);
  if (o.saveBest && o.save && path.resolve(o.saveBest) === path.resolve(o.save))
    throw new Error(`saveBest and save are the same file (${o.save}); the best epoch needs a file of its own`);
}

/** The images trained on and those validated on after each epoch. */
function validationSplit(data: ImageData, val: TrainOptions['val']): { train: Dataset; val?: Dataset } {
  if (val === undefined) return { train: data.train };
  const s =
    val === 'val' ? { train: data.train, val: data.val } : typeof val === 'number' ? holdOut(data.train, val) : { train: data.train, val };
  if (shapeText(s.val.shape) !== shapeText(data.train.shape))
    throw new Error(`val holds ${shapeText(s.val.shape)} images but the training data ${shapeText(data.train.shape)}`);
  const what =
    val === 'val' ? `${data.source}'s validation split` : typeof val === 'number' ? `a fraction ${val} of ${data.train.n} images` : 'val';
  if (!s.val.n) throw new Error(`the validation set is empty: ${what} holds no images`);
  if (!s.train.n) throw new Error(`no training images are left after holding out ${what}`);
  return s;
}

/** How the run's options are kept in its checkpoint, so that a resume must repeat them. */
function valKey(val: TrainOptions['val']): number | string | undefined {
  return typeof val === 'object' ? 'dataset' : val;
}

async function trainLocked(model: TrainableModel, data: ImageData, o: TrainOptions): Promise<TrainResult> {
  let rng = new Rng(o.seed);
  let startEpoch = 1;
  let stopState: EarlyStopState | undefined;
  if (o.resume) {
    const ck = readCheckpoint(o.resume, o.read);
    if (!ck.meta?.rngState) throw new Error(`${o.resume} has no shuffle RNG state: not a tensorkiln training checkpoint`);
    // a different seed or batch size would silently change the dropout masks or the batches
    const saved = ck.meta.extra ?? {};
    // (augment and val: absent means none, so either side's absence counts)
    for (const [k, flag, now, strict] of [
      ['seed', '--seed', o.seed, false],
      ['batchSize', '--batch-size', o.batchSize, false],
      ['augment', '--augment', augmentKey(o.augment), true],
      ['val', '--val', valKey(o.val), true],
    ] as const)
      if ((strict || saved[k] !== undefined) && saved[k] !== now)
        throw new Error(
          `${o.resume} was trained with ${flag} ${String(saved[k] ?? 'none')}; resume it with the same (got ${now ?? 'none'})`,
        );
    // a schedule spanning the run (cosine's T, one-cycle's length) would bend to another --epochs
    const span = saved.scheduleEpochs;
    if (span !== undefined && scheduleUsesLength(o.schedule) && span !== o.epochs)
      throw new Error(
        `${o.resume} was trained with a schedule spanning --epochs ${String(span)} (${describeSchedule(o.schedule)} takes its length from the run): ` +
          `resume it with --epochs ${String(span)}, or give the schedule its length (cosine:T, onecycle's total steps)`,
      );
    if (ck.meta.classes && ck.meta.classes.join('\n') !== data.classes.join('\n'))
      throw new Error(`${o.resume} was trained on classes ${ck.meta.classes.join(', ')}, not ${data.classes.join(', ')}`);
    applyCheckpoint(ck, o.resume, model, true);
    rng = new Rng(Uint32Array.from(ck.meta.rngState));
    startEpoch = ck.meta.epoch + 1;
    stopState = saved.earlyStop as EarlyStopState | undefined;
  }
  const split = validationSplit(data, o.val);
  const aug = resolveAugment(o.augment, data.normalization);
  const tracker = split.val && (o.earlyStop || o.saveBest) ? new EarlyStop(o.earlyStop ?? {}, stopState) : undefined;
  const extra = () => ({
    ...runOptions(o),
    batchSize: o.batchSize,
    seed: o.seed,
    ...(data.valSplit !== undefined && { valSplit: data.valSplit }),
    ...(aug && { augment: augmentKey(o.augment) }),
    ...(o.val !== undefined && { val: valKey(o.val) }),
    ...(tracker && { earlyStop: tracker.state }),
    ...(scheduleUsesLength(o.schedule) && { scheduleEpochs: o.epochs }),
  });
  // the epoch o.save holds, for the message if training diverges
  let saved = o.resume && o.save && path.resolve(o.resume) === path.resolve(o.save) ? startEpoch - 1 : undefined;
  const write = (file: string, epoch: number) =>
    saveCheckpoint(file, model, {
      epoch,
      normalization: data.normalization,
      classes: data.classes,
      rngState: [...rng.state],
      extra: extra(),
    });
  const save = (epoch: number) => {
    if (!o.save) return;
    write(o.save, epoch);
    saved = epoch;
  };
  let best: TrainResult['best'];
  let stoppedEpoch: number | undefined;
  const record = runLogger(model, data, o, startEpoch, split, aug);
  const started = performance.now();
  let losses: number[];
  try {
    losses = await fit(model, split.train, {
      ...o,
      augment: aug,
      val: split.val,
      rng,
      startEpoch,
      epochs: Math.max(0, o.epochs - startEpoch + 1),
      onEpoch: (epoch, loss, stats) => {
        const es = tracker?.update(epoch, stats);
        save(epoch);
        if (es?.improved) {
          best = { epoch, valLoss: stats.valLoss!, valAccuracy: stats.valAccuracy!, ...(o.saveBest && { file: o.saveBest }) };
          // what --save would hold after this epoch, so a run can also resume from it
          if (o.saveBest) write(o.saveBest, epoch);
        }
        record?.(epoch, loss, stats);
        o.onEpoch?.(epoch, loss, stats);
        if (!es?.stop) return;
        stoppedEpoch = epoch;
        const { monitor = 'loss', patience } = tracker!.o;
        o.log?.(
          `Early stop after epoch ${epoch}: validation ${monitor} has not improved for ${patience} epoch${patience === 1 ? '' : 's'} (best: epoch ${tracker!.state.bestEpoch}, ${tracker!.state.best})`,
        );
        return 'stop';
      },
    });
  } catch (e) {
    if (e instanceof NonFiniteLossError && o.save)
      e.message += saved ? `; ${o.save} holds epoch ${saved}` : `; nothing was saved to ${o.save} by this run`;
    throw e;
  }
  const seconds = (performance.now() - started) / 1000;
  // "and at the end": also when no epoch ran (--epochs 0 saves the initial state, epoch 0)
  const last = startEpoch - 1 + losses.length;
  if (o.save && saved !== last) save(last);
  const r: TrainResult = {
    losses,
    epochs: o.epochs,
    seconds,
    images: split.train.n,
    ...(split.val && { valImages: split.val.n }),
    trainAccuracy: accuracy(model, split.train),
    valAccuracy: accuracy(model, data.val),
    ...(o.save && { saved: { file: o.save, epoch: last } }),
    ...(stoppedEpoch !== undefined && { stoppedEpoch }),
    ...(best && { best }),
  };
  record?.end(r);
  return r;
}

/** `crop=4,flip`: the augmentation as the checkpoint keeps it (undefined: none). */
function augmentKey(a: AugmentOptions | undefined): string | undefined {
  const words = [a?.crop ? `crop=${a.crop}` : '', a?.flip ? 'flip' : ''].filter(Boolean);
  return words.length ? words.join(',') : undefined;
}

/** The epoch recorder of o.runLog: a resumed run keeps the log's epochs before its own. */
function runLogger(
  model: TrainableModel,
  data: ImageData,
  o: TrainOptions,
  startEpoch: number,
  split: { train: Dataset; val?: Dataset },
  aug: Augment | undefined,
) {
  if (!o.runLog) return undefined;
  const { file } = o.runLog;
  const kept = o.resume && fs.existsSync(file) ? readRunLog(file).epochs.filter((e) => e.epoch < startEpoch) : [];
  const run: RunInfo = {
    model: model.graph.name,
    backend: 'unknown',
    seed: o.seed,
    batchSize: o.batchSize,
    epochs: o.epochs,
    data: data.source,
    images: split.train.n,
    options: { ...runOptions(o), ...(aug && { augmentCrop: aug.crop, augmentFlip: aug.flip ? 1 : 0 }) },
    ...o.runLog.run,
  };
  const epochs: EpochRecord[] = [...kept];
  const epoch = (epoch: number, loss: number, s: EpochStats) => {
    // validating on data.val measured it already
    const valAccuracy =
      split.val === data.val && s.valAccuracy !== undefined ? s.valAccuracy : data.val.n ? accuracy(model, data.val) : null;
    epochs.push({
      epoch,
      loss,
      trainAccuracy: s.trainAccuracy,
      valAccuracy,
      lr: s.lr,
      imagesPerSecond: s.images / s.seconds,
      seconds: s.seconds,
      ...(s.valLoss !== undefined && { validation: { loss: s.valLoss, accuracy: s.valAccuracy!, images: split.val!.n } }),
    });
    writeRunLog(file, { run, epochs });
  };
  const end = (r: TrainResult) =>
    writeRunLog(file, {
      run,
      epochs,
      final: { trainAccuracy: r.trainAccuracy, valAccuracy: data.val.n ? r.valAccuracy : null, seconds: r.seconds },
    });
  return Object.assign(epoch, { end });
}

/** The optimizer settings, schedule and penalties of a run, as its log and checkpoint record them. */
function runOptions(o: TrainOptions): Record<string, number | string | boolean> {
  const kind = o.optimizer ?? 'sgd';
  const optim: Record<string, number | boolean> =
    kind === 'sgd'
      ? { momentum: o.momentum ?? 0, nesterov: !!o.nesterov }
      : { beta1: o.betas?.[0] ?? 0.9, beta2: o.betas?.[1] ?? 0.999, eps: o.eps ?? 1e-8 };
  const ls = o.loss?.kind === 'cross_entropy' ? (o.loss.labelSmoothing ?? 0) : 0;
  return {
    lr: o.lr,
    optimizer: kind,
    ...optim,
    weightDecay: o.weightDecay ?? 0,
    l1: o.l1 ?? 0,
    l2: o.l2 ?? 0,
    schedule: describeSchedule(o.schedule),
    labelSmoothing: ls,
  };
}

/** What weights files carry besides the weights (tensorkiln checkpoints; nothing for a plain state_dict). */
export interface WeightsInfo {
  normalization?: ChannelStats;
  classes?: string[];
  /** the validation split of the image folder it was trained on */
  valSplit?: number;
}

function infoOf(meta: CheckpointMeta | undefined): WeightsInfo {
  const split = meta?.extra?.valSplit;
  return {
    normalization: meta?.normalization,
    classes: meta?.classes,
    ...(typeof split === 'number' && { valSplit: split }),
  };
}

/** Loads weights from a checkpoint, a safetensors state_dict or a PyTorch .pt; returns what it says of its data. */
export function loadWeights(model: TrainableModel, file: string, o: ReadOptions = {}): WeightsInfo {
  return infoOf(loadCheckpointInto(file, model, false, o).meta);
}

/** Saves weights with the data's normalisation and class names (an ImageData will do). */
export function saveWeights(model: TrainableModel, file: string, info: Partial<DataInfo> = {}, epoch = 0): void {
  saveCheckpoint(file, model, { epoch, normalization: info.normalization, classes: info.classes });
}

/** What a weights file carries, without loading it into a model. */
export function weightsInfo(file: string, o: ReadOptions = {}): WeightsInfo {
  return infoOf(readCheckpoint(file, o).meta);
}

export interface Ranked {
  label: number;
  className: string;
  probability: number;
}

export interface Prediction {
  file: string;
  label: number;
  className: string;
  /** softmax over the classes, in label order */
  probabilities: number[];
  /** the `top` most probable classes, most probable first */
  top: Ranked[];
}

export interface PredictOptions {
  /** how many classes to rank per image (default 1) */
  top?: number;
}

/**
 * Classifies image files (PNG/JPEG, resized and centre-cropped to the model's
 * input, grayscale or RGB as it takes) after the training normalisation.
 * Class names default to the label numbers.
 */
export function predict(model: TrainableModel, files: string[], info: WeightsInfo, o: PredictOptions = {}): Prediction[] {
  const { normalization } = info;
  if (!normalization) throw new Error('predict needs the training normalisation (a checkpoint carries it; else compute it from the data)');
  const k = modelClasses(model);
  const classes = info.classes ?? Array.from({ length: k }, (_, i) => String(i));
  if (classes.length !== k) throw new Error(`${model.graph.name} outputs ${k} classes but ${classes.length} class names were given`);
  const top = o.top ?? 1;
  if (!Number.isInteger(top) || top < 1 || top > k) throw new Error(`top must be an integer in 1..${k} (the model's classes), got ${top}`);
  if (!files.length) return [];
  const shape = modelInput(model);
  const per = numel(shape);
  const x = new Float32Array(files.length * per);
  files.forEach((f, i) => x.set(normalize(loadImageBytes(f, shape), normalization, shape), i * per));
  const out: Prediction[] = [];
  model.eval();
  for (let start = 0; start < files.length; start += model.maxBatch) {
    const size = Math.min(model.maxBatch, files.length - start);
    const logits = model.forward(x.subarray(start * per, (start + size) * per), size);
    const probs = softmax(logits, size);
    for (let i = 0; i < size; i++) {
      const p = [...probs.subarray(i * k, (i + 1) * k)];
      // ranked by logit, and sort is stable: ties keep label order, as argmax (and so eval) takes the first
      const ranked = p
        .map((probability, label) => ({ label, className: classes[label], probability, logit: logits[i * k + label] }))
        .sort((a, b) => b.logit - a.logit)
        .map(({ label, className, probability }) => ({ label, className, probability }));
      out.push({
        file: files[start + i],
        label: ranked[0].label,
        className: ranked[0].className,
        probabilities: p,
        top: ranked.slice(0, top),
      });
    }
  }
  return out;
}
