// The book's training loop (chapter 8's `training_loop`), one native call per epoch.
import { Rng } from '../util/rng.js';
import type { Dataset } from '../data/loader.js';
import type { TrainableModel } from './model.js';
import { stepTerms, type EpochStepOptions, type StepOptions } from './rules.js';
import { makeSchedule, type ScheduleFn, type ScheduleOptions } from './schedule.js';
import type { Augment } from '../data/augment.js';
import { crossEntropy, type LossOptions } from '../ops/loss.js';

export interface FitOptions extends StepOptions {
  epochs: number;
  batchSize: number;
  /** shuffle order comes from this generator; pass a restored one to resume */
  rng: Rng;
  /** first epoch number (1 unless resuming) */
  startEpoch?: number;
  /** the learning-rate schedule (constant without); its length is startEpoch − 1 + epochs epochs */
  schedule?: ScheduleOptions;
  /** the book's log lines: epoch 1 and every 10th */
  log?: (line: string) => void;
  /** random crop and flip of every training batch (src/data/augment.ts); none by default, as the book */
  augment?: Augment;
  /** evaluated after every epoch in eval mode: its loss and accuracy go into EpochStats and the log lines */
  val?: Dataset;
  /** called after each epoch, e.g. to checkpoint; may be async; 'stop' ends training there (early stopping) */
  onEpoch?: (epoch: number, loss: number, stats: EpochStats) => void | 'stop' | Promise<void | 'stop'>;
}

/** What one epoch measured besides its loss. */
export interface EpochStats {
  /** train-mode predictions that matched the label, over the epoch's images */
  trainAccuracy: number;
  images: number;
  /** wall time of the epoch's steps */
  seconds: number;
  /** the learning rate of the epoch's last step */
  lr: number;
  /** mean loss on FitOptions.val after the epoch, eval mode: the training loss's kind, no penalties (absent without val) */
  valLoss?: number;
  /** eval-mode accuracy on FitOptions.val after the epoch */
  valAccuracy?: number;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly epoch: number,
    loss: number,
  ) {
    super(`training loss became ${loss} in epoch ${epoch}: stopped (lower the learning rate?)`);
    this.name = 'NonFiniteLossError';
  }
}

/** Trains in place; returns the mean training loss of each epoch run. */
export async function fit(model: TrainableModel, data: Dataset, o: FitOptions): Promise<number[]> {
  if (!Number.isInteger(o.epochs) || o.epochs < 0) throw new Error(`epochs must be a non-negative integer, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1 || o.batchSize > model.maxBatch)
    throw new Error(`batch size must be an integer in 1..${model.maxBatch} (the model's max batch), got ${o.batchSize}`);
  stepTerms(o);
  const losses: number[] = [];
  const first = o.startEpoch ?? 1;
  const steps = Math.ceil(data.n / o.batchSize);
  const perStep = o.schedule?.interval === 'step';
  const length = (first - 1 + o.epochs) * (perStep ? steps : 1);
  const at = o.schedule && makeSchedule(o.schedule, o.lr, length);
  for (let epoch = first; epoch < first + o.epochs; epoch++) {
    model.train();
    const order = o.rng.permutation(data.n);
    const opts = epochOptions(o, at, perStep, epoch, steps);
    const t0 = performance.now();
    const r = model.trainEpoch(data.x, data.y, order, o.batchSize, opts, o.augment);
    const stats: EpochStats = {
      trainAccuracy: data.n ? r.correct / data.n : 0,
      images: data.n,
      seconds: (performance.now() - t0) / 1000,
      lr: opts.lrSteps ? opts.lrSteps[steps - 1] : o.lr,
    };
    const loss = r.lossSum / r.batches;
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(epoch, loss);
    losses.push(loss);
    if (o.val) Object.assign(stats, validate(model, o.val, o.loss));
    if (epoch === 1 || epoch % 10 === 0) o.log?.(`${timestamp()} Epoch ${epoch}, Training loss ${loss}${valText(stats)}`);
    if ((await o.onEpoch?.(epoch, loss, stats)) === 'stop') break;
  }
  return losses;
}

/** An epoch's step options: the schedule's value at each step (interval 'step') or at the epoch (interval 'epoch'). */
function epochOptions(o: FitOptions, at: ScheduleFn | undefined, perStep: boolean, epoch: number, steps: number): EpochStepOptions {
  const { lr, optimizer, momentum, nesterov, betas, eps, weightDecay, l1, l2, loss } = o;
  const step: StepOptions = { lr, optimizer, momentum, nesterov, betas, eps, weightDecay, l1, l2, loss };
  if (!at) return step;
  const values = Array.from({ length: steps }, (_, i) => at(perStep ? (epoch - 1) * steps + i : epoch - 1));
  const lrSteps = Float64Array.from(values, (v) => v.lr);
  if (values[0].momentum === undefined) return { ...step, lrSteps };
  return { ...step, lrSteps, momentumSteps: Float64Array.from(values, (v) => v.momentum!) };
}

/** `, Validation loss 0.41, accuracy 0.8125` when the epoch was validated. */
function valText(s: EpochStats): string {
  return s.valLoss === undefined ? '' : `, Validation loss ${s.valLoss}, accuracy ${s.valAccuracy?.toFixed(4)}`;
}

/** Mean loss (of the training loss's kind, without penalties) and accuracy of `data` in eval mode. */
export function validate(
  model: TrainableModel,
  data: Dataset,
  loss?: LossOptions,
  batchSize = Math.min(256, model.maxBatch),
): { valLoss: number; valAccuracy: number } {
  if (!data.n) throw new Error('the validation set is empty');
  model.eval();
  const per = data.x.length / data.n;
  let sum = 0;
  let correct = 0;
  for (let start = 0; start < data.n; start += batchSize) {
    const size = Math.min(batchSize, data.n - start);
    const logits = model.forward(data.x.subarray(start * per, (start + size) * per), size);
    const y = data.y.subarray(start, start + size);
    sum += crossEntropy(logits, y, size, logits.length / size, loss).loss * size;
    const pred = argmax(logits, size);
    for (let b = 0; b < size; b++) if (pred[b] === y[b]) correct++;
  }
  return { valLoss: sum / data.n, valAccuracy: correct / data.n };
}

/** The book's timestamp style: `2020-01-16 23:07:21.889707`. */
export function timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}000`;
}

/** Predicted class per sample: the first index of the largest logit. */
export function argmax(logits: Float32Array, batch: number): Int32Array {
  const classes = logits.length / batch;
  const out = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[b * classes + c] > logits[b * classes + best]) best = c;
    out[b] = best;
  }
  return out;
}

/** The predicted class of every image of `data`, in eval mode. */
export function predictLabels(model: TrainableModel, data: Dataset, batchSize = Math.min(256, model.maxBatch)): Int32Array {
  model.eval();
  const per = data.x.length / data.n;
  const out = new Int32Array(data.n);
  for (let start = 0; start < data.n; start += batchSize) {
    const size = Math.min(batchSize, data.n - start);
    out.set(argmax(model.forward(data.x.subarray(start * per, (start + size) * per), size), size), start);
  }
  return out;
}

/** Fraction of `data` classified correctly in eval mode. */
export function accuracy(model: TrainableModel, data: Dataset, batchSize?: number): number {
  const pred = predictLabels(model, data, batchSize);
  let correct = 0;
  for (let i = 0; i < data.n; i++) if (pred[i] === data.y[i]) correct++;
  return data.n ? correct / data.n : 0;
}

/** Softmax of each row of logits. */
export function softmax(logits: Float32Array, batch: number): Float32Array {
  const classes = logits.length / batch;
  const out = new Float32Array(logits.length);
  for (let b = 0; b < batch; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    const m = Math.max(...row);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += out[b * classes + c] = Math.exp(row[c] - m);
    for (let c = 0; c < classes; c++) out[b * classes + c] /= sum;
  }
  return out;
}
