import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadCifar2 } from '../src/data/cifar.ts';
import type { ImageShape } from '../src/data/dataset.ts';
import { channelStats, normalize, toTensor } from '../src/data/transforms.ts';

const REAL_DIR = process.env.CIFAR10_DIR ?? '/work/shared/data/cifar10';
const PLANE = 1024;
const IMAGE = 3072;
const RGB: ImageShape = [3, 32, 32];

/** Straightforward float64 two-pass mean and unbiased std of channel c. */
function naiveStats(images: Uint8Array, c: number): [number, number] {
  const n = images.length / IMAGE;
  let sum = 0;
  for (let i = 0; i < n; i++) for (let p = 0; p < PLANE; p++) sum += images[i * IMAGE + c * PLANE + p] / 255;
  const mean = sum / (n * PLANE);
  let sq = 0;
  for (let i = 0; i < n; i++) for (let p = 0; p < PLANE; p++) sq += (images[i * IMAGE + c * PLANE + p] / 255 - mean) ** 2;
  return [mean, Math.sqrt(sq / (n * PLANE - 1))];
}

function pseudoRandomImages(n: number): Uint8Array {
  const out = new Uint8Array(n * IMAGE);
  let s = 12345;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Channel-dependent offset so the three channels differ.
    out[i] = ((s >>> 16) % 200) + 20 * Math.floor((i % IMAGE) / PLANE);
  }
  return out;
}

describe('toTensor / normalize', () => {
  it('maps bytes to [0, 1] float32', () => {
    expect(Array.from(toTensor(new Uint8Array([0, 51, 255])))).toEqual([0, Math.fround(0.2), 1]);
  });

  it('normalises per channel, bytes and floats alike', () => {
    const bytes = new Uint8Array(IMAGE);
    bytes.fill(255, 0, PLANE); // R = 1
    bytes.fill(51, PLANE, 2 * PLANE); // G = 0.2
    // B = 0
    const mean = [0.5, 0.2, 0.25];
    const std = [0.25, 0.5, 0.125];
    const out = normalize(bytes, { mean, std }, RGB);
    expect([out[0], out[2 * PLANE + 1023]]).toEqual([2, -2]);
    expect(out[PLANE + 7]).toBeCloseTo(0, 6); // float32(0.2) - 0.2
    expect(normalize(toTensor(bytes), { mean, std }, RGB)).toEqual(out);
  });

  it('rejects a partial image and wrong stat lengths', () => {
    const stats = { mean: [0, 0, 0], std: [1, 1, 1] };
    expect(() => normalize(new Uint8Array(100), stats, RGB)).toThrow(/100 values is not a positive multiple of one 3x32x32 image/);
    expect(() => normalize(new Uint8Array(IMAGE), { mean: [0, 0], std: [1, 1, 1] }, RGB)).toThrow(/need 3 means and 3 stds, got 2 and 3/);
  });
});

describe('channelStats', () => {
  it('equals a straightforward float64 mean and unbiased std', () => {
    const images = pseudoRandomImages(7);
    const stats = channelStats(images, RGB);
    for (let c = 0; c < 3; c++) {
      const [m, s] = naiveStats(images, c);
      expect(stats.mean[c]).toBeCloseTo(m, 12);
      expect(stats.std[c]).toBeCloseTo(s, 12);
    }
  });

  it('gives normalised data mean 0 and std 1 per channel', () => {
    const images = pseudoRandomImages(5);
    const stats = channelStats(images, RGB);
    const x = normalize(images, stats, RGB);
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < 5; i++) for (let p = 0; p < PLANE; p++) sum += x[i * IMAGE + c * PLANE + p];
      for (let i = 0; i < 5; i++) for (let p = 0; p < PLANE; p++) sq += x[i * IMAGE + c * PLANE + p] ** 2;
      expect(sum / (5 * PLANE)).toBeCloseTo(0, 5);
      expect(Math.sqrt(sq / (5 * PLANE - 1))).toBeCloseTo(1, 5);
    }
  });

  it('rejects an empty or partial image set', () => {
    expect(() => channelStats(new Uint8Array(0), RGB)).toThrow(/0 values is not a positive multiple/);
  });
});

describe.skipIf(!existsSync(REAL_DIR))('CIFAR-2 training-set statistics', () => {
  const { train } = loadCifar2(REAL_DIR);
  const stats = channelStats(train.images, RGB);

  it('match an independent float64 computation (naive sums over 10M values: ~1e-12 off)', () => {
    for (let c = 0; c < 3; c++) {
      const [m, s] = naiveStats(train.images, c);
      expect(Math.abs(stats.mean[c] - m)).toBeLessThan(1e-10);
      expect(Math.abs(stats.std[c] - s)).toBeLessThan(1e-10);
    }
  });

  it('are the pinned values (also from numpy float64 and PyTorch 1.13 float32)', () => {
    // Airplanes and birds only: redder-greener and brighter than the book's
    // ten-class (0.4915, 0.4823, 0.4468) / (0.2470, 0.2435, 0.2616): sky.
    const mean = [0.50739, 0.52581, 0.50638];
    const std = [0.23825, 0.23308, 0.26631];
    for (let c = 0; c < 3; c++) {
      expect(Math.abs(stats.mean[c] - mean[c])).toBeLessThan(1e-4);
      expect(Math.abs(stats.std[c] - std[c])).toBeLessThan(1e-4);
    }
  });
});
