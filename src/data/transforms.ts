// The book's preprocessing (chapter 7): ToTensor maps bytes to [0, 1], then
// Normalize subtracts a per-channel mean and divides by a per-channel std,
// both measured once over every pixel of the training split.

import { numel, shapeText, type ImageShape } from './dataset.ts';

/** Per-channel statistics of images in [0, 1], one entry per channel (R, G, B; or one for grayscale). */
export interface ChannelStats {
  mean: number[];
  std: number[];
}

/** torchvision ToTensor on CHW bytes: x / 255 as float32. */
export function toTensor(images: Uint8Array): Float32Array {
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = images[i] / 255;
  return out;
}

function checkImages(length: number, shape: ImageShape, what: string): number {
  const per = numel(shape);
  if (length === 0 || length % per !== 0) {
    throw new Error(`${what}: ${length} values is not a positive multiple of one ${shapeText(shape)} image (${per})`);
  }
  return length / per;
}

/**
 * Mean and std per channel over all pixels of all images, as the book's
 * `imgs.view(C, -1).mean(dim=1)` and `.std(dim=1)` on ToTensor'd images; the
 * std is torch's default, unbiased (divides by count - 1). Bytes take only
 * 256 values, so a histogram per channel reduces each to a 256-term float64
 * sum: no rounding drift over millions of pixels.
 */
export function channelStats(images: Uint8Array, shape: ImageShape): ChannelStats {
  const n = checkImages(images.length, shape, 'channelStats');
  const [channels, h, w] = shape;
  const plane = h * w;
  const count = n * plane;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    const hist = new Float64Array(256);
    for (let img = 0; img < n; img++) {
      const base = (img * channels + c) * plane;
      for (let p = 0; p < plane; p++) hist[images[base + p]]++;
    }
    let sum = 0;
    for (let v = 0; v < 256; v++) sum += hist[v] * (v / 255);
    const m = sum / count;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += hist[v] * (v / 255 - m) ** 2;
    const s = Math.sqrt(sq / (count - 1));
    if (!(s > 0)) throw new Error(`channelStats: channel ${c} is constant (or a single pixel) over the training images; its std is ${s}`);
    mean.push(m);
    std.push(s);
  }
  return { mean, std };
}

/**
 * (x - mean[c]) / std[c] for CHW images of `shape`, any number of them. Bytes
 * go through ToTensor first (same float32 values, so both inputs give the same
 * result); floats are taken as already in [0, 1].
 */
export function normalize(images: Uint8Array | Float32Array, stats: ChannelStats, shape: ImageShape): Float32Array {
  const n = checkImages(images.length, shape, 'normalize');
  const [channels, h, w] = shape;
  if (stats.mean.length !== channels || stats.std.length !== channels)
    throw new Error(
      `normalize: ${shapeText(shape)} images need ${channels} means and ${channels} stds, got ${stats.mean.length} and ${stats.std.length}`,
    );
  const plane = h * w;
  const out = images instanceof Uint8Array ? toTensor(images) : Float32Array.from(images);
  for (let img = 0; img < n; img++) {
    for (let c = 0; c < channels; c++) {
      const base = (img * channels + c) * plane;
      const m = stats.mean[c];
      const s = stats.std[c];
      for (let p = base; p < base + plane; p++) out[p] = (out[p] - m) / s;
    }
  }
  return out;
}
