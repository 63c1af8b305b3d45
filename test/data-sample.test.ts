import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IMAGE_BYTES, SAMPLE_DIR, TEST_FILE, TRAIN_FILES, loadCifar2, loadSample, readCifarBatch } from '../src/data/cifar.ts';

const REAL_DIR = process.env.CIFAR10_DIR ?? '/work/shared/data/cifar10';

function count(labels: Int32Array, value: number): number {
  return labels.filter((l) => l === value).length;
}

describe('shipped CIFAR-2 sample', () => {
  const sample = loadSample();

  it('holds 8,000 training (4,000 per class) and 2,000 test images (1,000 per class)', () => {
    expect([count(sample.train.labels, 0), count(sample.train.labels, 1)]).toEqual([4000, 4000]);
    expect([count(sample.val.labels, 0), count(sample.val.labels, 1)]).toEqual([1000, 1000]);
    expect(sample.train.images.length).toBe(8000 * IMAGE_BYTES);
  });

  it('is what loadCifar2 reads when given no directory', () => {
    const again = loadCifar2();
    expect(Buffer.compare(again.train.images, sample.train.images)).toBe(0);
    expect(again.val.labels).toEqual(sample.val.labels);
  });

  it('stays within 25 MB', () => {
    const total = readdirSync(SAMPLE_DIR).reduce((s, f) => s + statSync(join(SAMPLE_DIR, f)).size, 0);
    expect(total).toBeLessThanOrEqual(25e6);
  });
});

describe.skipIf(!existsSync(REAL_DIR))('shipped sample against the real data', () => {
  /** The documented rule: the first k airplanes and first k birds of a batch, in file order. */
  function firstPerClass(labels: Int32Array, k: number): number[] {
    const seen = [0, 0, 0];
    const keep: number[] = [];
    labels.forEach((l, i) => {
      if ((l === 0 || l === 2) && seen[l]++ < k) keep.push(i);
    });
    return keep;
  }

  for (const name of [...TRAIN_FILES, TEST_FILE]) {
    it(`${name}.br holds the selected records of ${name} byte for byte`, () => {
      const real = readCifarBatch(join(REAL_DIR, name));
      const mine = readCifarBatch(join(SAMPLE_DIR, `${name}.br`));
      const keep = firstPerClass(real.labels, name === TEST_FILE ? 1000 : 800);
      expect(mine.labels.length).toBe(keep.length);
      if (name === TEST_FILE) expect(keep.length).toBe(real.labels.length); // the whole test split
      keep.forEach((src, dst) => {
        const a = real.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES);
        const b = mine.images.subarray(dst * IMAGE_BYTES, (dst + 1) * IMAGE_BYTES);
        if (real.labels[src] !== mine.labels[dst] || Buffer.compare(a, b) !== 0)
          throw new Error(`${name}: sample record ${dst} != record ${src}`);
      });
    });
  }
});
