// The book's preprocessing (chapter 7): ToTensor maps bytes to [0, 1], then
// Normalize subtracts a per-channel mean and divides by a per-channel std,
// both measured once over every pixel of the training split.

/** Per-channel statistics of images in [0, 1], R, G, B order. */
export interface ChannelStats {
  mean: [number, number, number];
  std: [number, number, number];
}

const PLANE = 32 * 32;
const IMAGE = 3 * PLANE;

/** torchvision ToTensor on CHW bytes: x / 255 as float32. */
export function toTensor(images: Uint8Array): Float32Array {
  const out = new Float32Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = images[i] / 255;
  return out;
}

function checkImages(length: number, what: string): number {
  if (length === 0 || length % IMAGE !== 0) {
    throw new Error(`${what}: ${length} values is not a positive multiple of one 3x32x32 image (${IMAGE})`);
  }
  return length / IMAGE;
}

/**
 * Mean and std per channel over all pixels of all images, as the book's
 * `imgs.view(3, -1).mean(dim=1)` and `.std(dim=1)` on ToTensor'd images; the
 * std is torch's default, unbiased (divides by count - 1). Bytes take only
 * 256 values, so a histogram per channel reduces each to a 256-term float64
 * sum: no rounding drift over millions of pixels.
 */
export function channelStats(images: Uint8Array): ChannelStats {
  const n = checkImages(images.length, 'channelStats');
  const count = n * PLANE;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < 3; c++) {
    const hist = new Float64Array(256);
    for (let img = 0; img < n; img++) {
      const base = img * IMAGE + c * PLANE;
      for (let p = 0; p < PLANE; p++) hist[images[base + p]]++;
    }
    let sum = 0;
    for (let v = 0; v < 256; v++) sum += hist[v] * (v / 255);
    const m = sum / count;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += hist[v] * (v / 255 - m) ** 2;
    mean.push(m);
    std.push(Math.sqrt(sq / (count - 1)));
  }
  return { mean: mean as ChannelStats['mean'], std: std as ChannelStats['std'] };
}

/**
 * (x - mean[c]) / std[c] for CHW images, any number of them. Bytes go
 * through ToTensor first (same float32 values, so both inputs give the same
 * result); floats are taken as already in [0, 1].
 */
export function normalize(images: Uint8Array | Float32Array, mean: readonly number[], std: readonly number[]): Float32Array {
  const n = checkImages(images.length, 'normalize');
  if (mean.length !== 3 || std.length !== 3) throw new Error(`normalize: need 3 means and 3 stds, got ${mean.length} and ${std.length}`);
  const out = images instanceof Uint8Array ? toTensor(images) : Float32Array.from(images);
  for (let img = 0; img < n; img++) {
    for (let c = 0; c < 3; c++) {
      const base = img * IMAGE + c * PLANE;
      const m = mean[c];
      const s = std[c];
      for (let p = base; p < base + PLANE; p++) out[p] = (out[p] - m) / s;
    }
  }
  return out;
}
