// Checkpoints: one safetensors file holding the state_dict under PyTorch's
// names, the optimiser/RNG state under `train.` keys, and metadata (model,
// graph hash, epoch, normalisation, class names). Written atomically under a lock (one
// writer per path), checked on load: every metadata field strictly, every
// float finite (NaN weights would make every prediction NaN, silently).
import { graphHash } from '../graph/hash.js';
import type { HostTensor } from '../graph/ir.js';
import fs from 'node:fs';
import path from 'node:path';
import { readWeights } from '../io/convert.js';
import { MAX_WEIGHTS_FILE_BYTES } from '../io/limits.js';
import { saveSafetensors, toFloat32, type Tensor } from '../io/safetensors.js';
import type { ChannelStats } from '../data/transforms.js';
import { readRegularFile } from '../util/fs.js';
import { acquireLock } from '../util/lock.js';
import type { TrainableModel } from './model.js';

export const CHECKPOINT_FORMAT = 'tensorkiln-checkpoint-v1';
const TRAIN_PREFIX = 'train.';

export interface CheckpointMeta {
  model: string;
  graphHash: string;
  epoch: number;
  normalization?: ChannelStats;
  /** the dataset's class names: label i is classes[i] */
  classes?: string[];
  /** shuffle generator state, to resume the same sequence of epochs */
  rngState?: number[];
  /** anything else worth keeping (options of the run) */
  extra?: Record<string, unknown>;
}

/**
 * Takes the write lock of checkpoint `file` (<file>.lock) for a whole run: a
 * second process saving to the same path fails at once, naming the holder,
 * instead of silently overwriting this run's result. Returns the release.
 */
export function lockCheckpoint(file: string, what = 'saving a checkpoint'): () => void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  return acquireLock(`${path.resolve(file)}.lock`, file, {
    what: `${what} (pid ${process.pid})`,
    advice: 'another run is saving to it; save to another path, or wait until it ends',
  });
}

export function saveCheckpoint(file: string, model: TrainableModel, meta: Omit<CheckpointMeta, 'model' | 'graphHash'>): void {
  const release = lockCheckpoint(file);
  try {
    const tensors = new Map<string, Tensor>(model.stateDict());
    for (const [k, t] of model.trainingState()) tensors.set(TRAIN_PREFIX + k, t);
    saveSafetensors(file, tensors, {
      format: CHECKPOINT_FORMAT,
      model: model.graph.name,
      graph_hash: graphHash(model.graph),
      epoch: String(meta.epoch),
      ...(meta.normalization && { normalization: JSON.stringify(meta.normalization) }),
      ...(meta.classes && { classes: JSON.stringify(meta.classes) }),
      ...(meta.rngState && { rng_state: JSON.stringify(meta.rngState) }),
      ...(meta.extra && { extra: JSON.stringify(meta.extra) }),
    });
  } finally {
    release();
  }
}

export interface ReadOptions {
  /** load NaN/Inf weights or normalisation anyway, with a warning (default: an error) */
  allowNonfinite?: boolean;
  /** where that warning goes (default: stderr) */
  warn?: (message: string) => void;
}

export interface Checkpoint {
  state: Map<string, HostTensor>;
  training: Map<string, HostTensor>;
  /** absent for plain state_dict files (e.g. converted from PyTorch) */
  meta?: CheckpointMeta;
}

/** Reads a tensorkiln checkpoint, a plain safetensors state_dict, or a PyTorch .pt state_dict. */
export function readCheckpoint(file: string, o: ReadOptions = {}): Checkpoint {
  return parseCheckpoint(readRegularFile(file, 'weights file', MAX_WEIGHTS_FILE_BYTES), file, o);
}

/** readCheckpoint of bytes already read; `file` names them in errors. */
export function parseCheckpoint(bytes: Uint8Array, file: string, o: ReadOptions = {}): Checkpoint {
  const { tensors, metadata } = readWeights(file, bytes);
  const state = new Map<string, HostTensor>();
  const training = new Map<string, HostTensor>();
  const nonfinite: string[] = [];
  for (const [k, raw] of tensors) {
    const t = raw.dtype === 'F64' ? toFloat32(raw) : raw;
    if (t.dtype !== 'F32' && t.dtype !== 'I64') throw new Error(`${file}: tensor '${k}' is ${t.dtype}; expected F32 or I64`);
    const bad = t.dtype === 'F32' ? countNonfinite(t.data as Float32Array) : undefined;
    if (bad) nonfinite.push(`'${k}' (${bad.count} of ${t.data.length}, first ${bad.first})`);
    (k.startsWith(TRAIN_PREFIX) ? training : state).set(k.startsWith(TRAIN_PREFIX) ? k.slice(TRAIN_PREFIX.length) : k, t as HostTensor);
  }
  if (nonfinite.length)
    refuseNonfinite(
      `${file}: non-finite values in ${nonfinite.length} tensor(s): ${nonfinite.slice(0, 5).join(', ')}${nonfinite.length > 5 ? ', ...' : ''}`,
      o,
    );
  if (metadata.format !== CHECKPOINT_FORMAT) return { state, training };
  return { state, training, meta: checkpointMeta(metadata, file, o) };
}

function countNonfinite(data: Float32Array): { count: number; first: string } | undefined {
  let count = 0;
  let first = '';
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i])) {
      if (!count) first = `${data[i]} at index ${i}`;
      count++;
    }
  return count ? { count, first } : undefined;
}

function refuseNonfinite(message: string, o: ReadOptions): void {
  const how = 'weights must be finite; allowNonfinite (--allow-nonfinite) loads them anyway';
  if (!o.allowNonfinite) throw new Error(`${message}; ${how}`);
  (o.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(`${message}; loaded anyway (--allow-nonfinite)`);
}

/** The metadata of a tensorkiln checkpoint, each field checked: a bad one is an error naming it. */
function checkpointMeta(metadata: Record<string, string>, file: string, o: ReadOptions): CheckpointMeta {
  const bad = (key: string, want: string): never => {
    const v = metadata[key];
    throw new Error(`${file}: metadata '${key}' must be ${want}, got ${JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v)}`);
  };
  const json = (key: string): unknown => {
    if (metadata[key] === undefined) return undefined;
    try {
      return JSON.parse(metadata[key]);
    } catch {
      return bad(key, 'valid JSON');
    }
  };
  for (const key of ['model', 'graph_hash', 'epoch'])
    if (metadata[key] === undefined) throw new Error(`${file}: metadata '${key}' is missing`);
  if (!/^\d{1,9}$/.test(metadata.epoch)) bad('epoch', 'a non-negative integer');
  const normalization = json('normalization');
  if (normalization !== undefined) checkNormalization(normalization, file, o);
  const classes = json('classes');
  if (classes !== undefined && !(Array.isArray(classes) && classes.length > 0 && classes.every((c) => typeof c === 'string')))
    throw new Error(`${file}: metadata 'classes' is malformed: ${JSON.stringify(classes).slice(0, 80)}`);
  const rngState = json('rng_state');
  if (rngState !== undefined && !(Array.isArray(rngState) && rngState.length === 4 && rngState.every(isUint32)))
    bad('rng_state', 'four 32-bit unsigned integers');
  const extra = json('extra');
  if (extra !== undefined && (typeof extra !== 'object' || extra === null || Array.isArray(extra))) bad('extra', 'a JSON object');
  return {
    model: metadata.model,
    graphHash: metadata.graph_hash,
    epoch: Number(metadata.epoch),
    normalization: normalization as ChannelStats | undefined,
    classes: classes as string[] | undefined,
    rngState: rngState as number[] | undefined,
    extra: extra as Record<string, unknown> | undefined,
  };
}

function isUint32(v: unknown): boolean {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
}

/** {mean, std}: equal-length lists of numbers; finite (std > 0), else refused as non-finite weights are. */
function checkNormalization(n: unknown, file: string, o: ReadOptions): void {
  const where = `${file}: metadata 'normalization'`;
  const lists = n as { mean?: unknown; std?: unknown };
  const isList = (v: unknown): v is number[] =>
    Array.isArray(v) && v.length >= 1 && v.length <= 1024 && v.every((x) => typeof x === 'number');
  if (typeof n !== 'object' || n === null || !isList(lists.mean) || !isList(lists.std) || lists.mean.length !== lists.std.length)
    throw new Error(`${where} is malformed: must be {"mean": [...], "std": [...]}, one number per input channel in each`);
  if (!lists.mean.every(Number.isFinite) || !lists.std.every((s) => Number.isFinite(s) && s > 0))
    refuseNonfinite(`${where} has mean [${lists.mean}] and std [${lists.std}]: each mean finite, each std finite and above 0`, o);
}

/**
 * Loads weights (and, when `resume`, the optimiser state) into a model.
 * A checkpoint of another model fails with both names; names and shapes are
 * checked by the model's strict loadStateDict before anything changes.
 */
export function loadCheckpointInto(file: string, model: TrainableModel, resume = false, o: ReadOptions = {}): Checkpoint {
  return applyCheckpoint(readCheckpoint(file, o), file, model, resume);
}

/** loadCheckpointInto for a checkpoint already read (`file` names it in errors). */
export function applyCheckpoint(ckpt: Checkpoint, file: string, model: TrainableModel, resume = false): Checkpoint {
  const m = ckpt.meta;
  if (m && m.graphHash !== graphHash(model.graph))
    throw new Error(
      `${file} was saved from model ${m.model} (graph ${m.graphHash}), not this ${model.graph.name} (graph ${graphHash(model.graph)})`,
    );
  if (resume && !ckpt.training.size) throw new Error(`${file} holds no training state to resume from (not a tensorkiln checkpoint?)`);
  const channels = model.graph.inputShape[0];
  const norm = m?.normalization;
  if (norm && norm.mean.length !== channels)
    throw new Error(`${file}: metadata 'normalization' has ${norm.mean.length} channel(s), the model's input has ${channels}`);
  if (!resume) {
    model.loadStateDict(ckpt.state);
    return ckpt;
  }
  // two loads, each strict: if the second refuses, the first is undone
  const before = { state: model.stateDict(), training: model.trainingState() };
  try {
    model.loadStateDict(ckpt.state);
    model.loadTrainingState(ckpt.training);
  } catch (e) {
    model.loadStateDict(before.state);
    model.loadTrainingState(before.training);
    throw e;
  }
  return ckpt;
}
