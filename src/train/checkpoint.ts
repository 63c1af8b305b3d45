// Checkpoints: one safetensors file holding the state_dict under PyTorch's
// names, the optimiser/RNG state under `train.` keys, and metadata (model,
// graph hash, epoch, normalisation, class names). Written atomically, checked on load.
import { graphHash } from '../graph/hash.js';
import type { HostTensor } from '../graph/ir.js';
import fs from 'node:fs';
import path from 'node:path';
import { readWeights } from '../io/convert.js';
import { saveSafetensors, toFloat32, type Tensor } from '../io/safetensors.js';
import type { ChannelStats } from '../data/transforms.js';
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

export function saveCheckpoint(file: string, model: TrainableModel, meta: Omit<CheckpointMeta, 'model' | 'graphHash'>): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
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
}

export interface Checkpoint {
  state: Map<string, HostTensor>;
  training: Map<string, HostTensor>;
  /** absent for plain state_dict files (e.g. converted from PyTorch) */
  meta?: CheckpointMeta;
}

/** Reads a tensorkiln checkpoint, a plain safetensors state_dict, or a PyTorch .pt state_dict. */
export function readCheckpoint(file: string): Checkpoint {
  if (!fs.existsSync(file)) throw new Error(`weights file not found: ${file}`);
  const { tensors, metadata } = readWeights(file, fs.readFileSync(file));
  const state = new Map<string, HostTensor>();
  const training = new Map<string, HostTensor>();
  for (const [k, raw] of tensors) {
    const t = raw.dtype === 'F64' ? toFloat32(raw) : raw;
    if (t.dtype !== 'F32' && t.dtype !== 'I64') throw new Error(`${file}: tensor '${k}' is ${t.dtype}; expected F32 or I64`);
    (k.startsWith(TRAIN_PREFIX) ? training : state).set(k.startsWith(TRAIN_PREFIX) ? k.slice(TRAIN_PREFIX.length) : k, t as HostTensor);
  }
  if (metadata.format !== CHECKPOINT_FORMAT) return { state, training };
  const json = <T>(key: string): T | undefined => {
    if (metadata[key] === undefined) return undefined;
    try {
      return JSON.parse(metadata[key]) as T;
    } catch {
      throw new Error(`${file}: metadata '${key}' is not valid JSON`);
    }
  };
  const meta: CheckpointMeta = {
    model: metadata.model ?? '',
    graphHash: metadata.graph_hash ?? '',
    epoch: Number(metadata.epoch ?? 0),
    normalization: checked(file, 'normalization', json<ChannelStats>('normalization'), isStats),
    classes: checked(file, 'classes', json<string[]>('classes'), isNames),
    rngState: json<number[]>('rng_state'),
    extra: json<Record<string, unknown>>('extra'),
  };
  return { state, training, meta };
}

const isNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
const isStats = (v: unknown): boolean => {
  const s = v as ChannelStats;
  return isNumbers(s?.mean) && isNumbers(s.std) && s.mean.length === s.std.length && s.mean.length > 0;
};
const isNames = (v: unknown): boolean => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');

function checked<T>(file: string, key: string, v: T | undefined, ok: (v: unknown) => boolean): T | undefined {
  if (v !== undefined && !ok(v)) throw new Error(`${file}: metadata '${key}' is malformed: ${JSON.stringify(v).slice(0, 80)}`);
  return v;
}

/**
 * Loads weights (and, when `resume`, the optimiser state) into a model.
 * A checkpoint of another model fails with both names; names and shapes are
 * checked by the model's strict loadStateDict before anything changes.
 */
export function loadCheckpointInto(file: string, model: TrainableModel, resume = false): Checkpoint {
  return applyCheckpoint(readCheckpoint(file), file, model, resume);
}

/** loadCheckpointInto for a checkpoint already read (`file` names it in errors). */
export function applyCheckpoint(ckpt: Checkpoint, file: string, model: TrainableModel, resume = false): Checkpoint {
  const m = ckpt.meta;
  if (m && m.graphHash !== graphHash(model.graph))
    throw new Error(
      `${file} was saved from model ${m.model} (graph ${m.graphHash}), not this ${model.graph.name} (graph ${graphHash(model.graph)})`,
    );
  if (resume && !ckpt.training.size) throw new Error(`${file} holds no training state to resume from (not a tensorkiln checkpoint?)`);
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
