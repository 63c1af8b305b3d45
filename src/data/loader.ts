// Mini-batches over an in-memory dataset, as the book's
// `DataLoader(ds, batch_size=64, shuffle=True)`: a fresh seeded permutation
// per epoch when shuffling, and the last partial batch kept (drop_last=False).

import type { Rng } from '../util/rng.ts';
import { heldOut, numel, type ImageShape, type RawImages } from './dataset.ts';
import { normalize, type ChannelStats } from './transforms.ts';

/** Normalised images (N*C*H*W, CHW) and their class indices. */
export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  n: number;
  /** per-sample [C, H, W] */
  shape: ImageShape;
}

/** One mini-batch; `size` is below the batch size only for the last one. */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
  size: number;
}

export interface BatchOptions {
  shuffle?: boolean;
  /** Required when shuffling, so that every run names its seed. */
  rng?: Rng;
}

/** Normalises byte images with the given (training-set) statistics. */
export function makeDataset(raw: RawImages, stats: ChannelStats): Dataset {
  const n = raw.labels.length;
  const per = numel(raw.shape);
  if (raw.images.length !== n * per) {
    throw new Error(`makeDataset: ${raw.images.length} image bytes for ${n} labels, expected ${n * per}`);
  }
  const x = n ? normalize(raw.images, stats, raw.shape) : new Float32Array(0);
  return { x, y: Int32Array.from(raw.labels), n, shape: [...raw.shape] };
}

/**
 * Holds out `fraction` of each class of `ds` (every (1/f)-th image of the class,
 * spread over it, as image folders split), for validation during training.
 */
export function holdOut(ds: Dataset, fraction: number): { train: Dataset; val: Dataset } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`the held-out fraction must be in (0, 1), got ${fraction}`);
  const seen = new Map<number, number>();
  const keep: number[] = [];
  const out: number[] = [];
  for (let i = 0; i < ds.n; i++) {
    const k = seen.get(ds.y[i]) ?? 0;
    seen.set(ds.y[i], k + 1);
    (heldOut(k, fraction) ? out : keep).push(i);
  }
  return { train: pick(ds, keep), val: pick(ds, out) };
}

function pick(ds: Dataset, rows: number[]): Dataset {
  const per = numel(ds.shape);
  const x = new Float32Array(rows.length * per);
  rows.forEach((r, i) => x.set(ds.x.subarray(r * per, (r + 1) * per), i * per));
  return { x, y: Int32Array.from(rows, (r) => ds.y[r]), n: rows.length, shape: [...ds.shape] };
}

/** A seeded permutation of 0..n-1: the visiting order of one shuffled epoch. */
export function shuffledOrder(n: number, rng: Rng): Uint32Array {
  return rng.permutation(n);
}

/**
 * Iterates over `ds` in batches of `batchSize`. The order is drawn when this
 * is called (not on the first `next()`), so the rng advances predictably.
 * Every batch is copied into one buffer reused for the whole pass: a yielded
 * batch is valid only until the next one is requested.
 */
export function batches(ds: Dataset, batchSize: number, opts: BatchOptions = {}): Generator<Batch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batches: batch size must be a positive integer, got ${batchSize}`);
  if (opts.shuffle && !opts.rng) throw new Error('batches: shuffle needs a seeded rng (opts.rng)');
  const order = opts.shuffle ? shuffledOrder(ds.n, opts.rng as Rng) : undefined;
  return iterate(ds, batchSize, order);
}

function* iterate(ds: Dataset, batchSize: number, order: Uint32Array | undefined): Generator<Batch> {
  const per = numel(ds.shape);
  const xBuf = new Float32Array(Math.min(batchSize, ds.n) * per);
  const yBuf = new Int32Array(Math.min(batchSize, ds.n));
  for (let start = 0; start < ds.n; start += batchSize) {
    const size = Math.min(batchSize, ds.n - start);
    if (order) {
      for (let i = 0; i < size; i++) {
        const src = order[start + i];
        xBuf.set(ds.x.subarray(src * per, (src + 1) * per), i * per);
        yBuf[i] = ds.y[src];
      }
    } else {
      // Sequential: one contiguous copy.
      xBuf.set(ds.x.subarray(start * per, (start + size) * per));
      yBuf.set(ds.y.subarray(start, start + size));
    }
    yield { x: xBuf.subarray(0, size * per), y: yBuf.subarray(0, size), size };
  }
}
