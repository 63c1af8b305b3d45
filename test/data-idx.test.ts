// The IDX reader (MNIST, Fashion-MNIST): hand-made files, every malformed-file
// error, and the real Fashion-MNIST of Debian's dataset-fashion-mnist against an
// independent reader (Python's gzip and struct).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadData } from '../src/api/data.ts';
import { FASHION_MNIST_CLASSES, loadIdx, parseIdx, readIdx } from '../src/data/idx.ts';
import { readData } from '../src/data/source.ts';
import { FASHION_DIR, idxBytes, tmpDir } from './fixtures/data-files.ts';

/** An IDX directory: n train and m test images of h x w (pixel = image index), with the given labels. */
function idxDir(o: { train: number[]; test: number[]; h?: number; w?: number; testH?: number; gz?: boolean }): string {
  const dir = tmpDir('tk-idx-');
  const write = (name: string, bytes: Uint8Array) =>
    fs.writeFileSync(path.join(dir, name + (o.gz ? '.gz' : '')), o.gz ? gzipSync(bytes) : bytes);
  const images = (n: number, h: number, w: number) =>
    idxBytes(
      [n, h, w],
      Array.from({ length: n * h * w }, (_, k) => Math.floor(k / (h * w))),
    );
  const [h, w] = [o.h ?? 4, o.w ?? 3];
  write('train-images-idx3-ubyte', images(o.train.length, h, w));
  write('train-labels-idx1-ubyte', idxBytes([o.train.length], o.train));
  write('t10k-images-idx3-ubyte', images(o.test.length, o.testH ?? h, w));
  write('t10k-labels-idx1-ubyte', idxBytes([o.test.length], o.test));
  return dir;
}

describe('parseIdx', () => {
  it('reads the dimensions big-endian and the bytes after the header', () => {
    const a = parseIdx(idxBytes([2, 3, 256], new Array(2 * 3 * 256).fill(7)), 'x');
    expect(a.dims).toEqual([2, 3, 256]);
    expect(a.data.length).toBe(1536);
    expect(a.data[1535]).toBe(7);
  });

  it('names what is wrong: magic, element type, header, size', () => {
    expect(() => parseIdx(new Uint8Array([1, 2, 3, 4, 5]), 'f')).toThrow(
      'f: not an IDX file (expected a magic 00 00 <type> <dims>; first bytes: 01 02 03 04 05)',
    );
    expect(() => parseIdx(new Uint8Array(0), 'f')).toThrow(/first bytes: none, empty file/);
    expect(() => parseIdx(new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), 'f')).toThrow(
      'f: IDX elements are floats; only unsigned bytes (type 0x08) are supported',
    );
    expect(() => parseIdx(new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1]), 'f')).toThrow('f: truncated IDX header (8 bytes for 3 dimensions)');
    const full = idxBytes([2, 2, 2], new Array(8).fill(1));
    expect(() => parseIdx(full.subarray(0, full.length - 1), 'f')).toThrow(
      'f: truncated: dimensions [2, 2, 2] need 24 bytes, the file has 23',
    );
    const over = new Uint8Array(full.length + 5);
    over.set(full);
    expect(() => parseIdx(over, 'f')).toThrow('f: 5 bytes too many: dimensions [2, 2, 2] need 24 bytes, the file has 29');
  });

  it('gunzips by content, and names corrupt gzip', () => {
    const dir = tmpDir('tk-idx-');
    const bytes = idxBytes([3], [1, 2, 3]);
    fs.writeFileSync(path.join(dir, 'a'), gzipSync(bytes));
    expect(Array.from(readIdx(path.join(dir, 'a')).data)).toEqual([1, 2, 3]);
    const cut = gzipSync(bytes).subarray(0, 15);
    fs.writeFileSync(path.join(dir, 'b.gz'), cut);
    expect(() => readIdx(path.join(dir, 'b.gz'))).toThrow(`${path.join(dir, 'b.gz')}: corrupt gzip data`);
  });
});

describe('loadIdx', () => {
  it('reads train-* and t10k-* (plain or gzip) as 1-channel images with their labels', () => {
    for (const gz of [false, true]) {
      const dir = idxDir({ train: [3, 0, 1], test: [2], gz });
      const d = loadIdx(dir);
      expect(d.train.shape).toEqual([1, 4, 3]);
      expect(Array.from(d.train.labels)).toEqual([3, 0, 1]);
      expect(Array.from(d.val.labels)).toEqual([2]);
      expect([d.train.images[0], d.train.images[12], d.train.images[35]]).toEqual([0, 1, 2]); // pixel = image index
      expect(d.classes).toEqual(['0', '1', '2', '3']); // label numbers up to the largest training label
      expect(d.source).toBe(`idx:${dir}`);
    }
  });

  it('names the missing files', () => {
    const dir = tmpDir('tk-idx-');
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(idxBytes([1, 1, 1], [0])));
    expect(() => loadIdx(dir)).toThrow(
      `IDX directory ${dir} lacks train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte`,
    );
  });

  it('a label out of range names the file and image', () => {
    const dir = idxDir({ train: [0, 9, 10], test: [1] });
    expect(() => readData(`fashion-mnist:${dir}`, {})).toThrow(
      `${path.join(dir, 'train-labels-idx1-ubyte')}: image 2 has label 10, out of range 0-9 (10 classes)`,
    );
    // without names the training labels set the count, so only the test split can be out of range
    expect(() => loadIdx(idxDir({ train: [0, 1], test: [2] }))).toThrow(/t10k-labels-idx1-ubyte: image 0 has label 2, out of range 0-1/);
  });

  it('rejects mixed image sizes between the splits, and images and labels that disagree in number', () => {
    const dir = idxDir({ train: [0], test: [0], testH: 5 });
    expect(() => loadIdx(dir)).toThrow(/mixed image sizes: .*train-images-idx3-ubyte holds 1x4x3 images, .*t10k-images-idx3-ubyte 1x5x3/);
    const bad = idxDir({ train: [0, 1], test: [0] });
    fs.writeFileSync(path.join(bad, 'train-labels-idx1-ubyte'), idxBytes([3], [0, 1, 1]));
    expect(() => loadIdx(bad)).toThrow(/train-images-idx3-ubyte holds 2 images but .*train-labels-idx1-ubyte 3 labels/);
    fs.writeFileSync(path.join(bad, 'train-images-idx3-ubyte'), idxBytes([2, 4], new Array(8).fill(0)));
    expect(() => loadIdx(bad)).toThrow(/train-images-idx3-ubyte: images must be \[N, H, W\], got \[2, 4\]/);
  });
});

const python = spawnSync('/usr/bin/python3', ['-c', 'import gzip, struct']).status === 0;

describe.skipIf(!fs.existsSync(FASHION_DIR))('real Fashion-MNIST (skipped without: apt-get install dataset-fashion-mnist)', () => {
  const d = readData(`fashion-mnist:${FASHION_DIR}`, {});

  it('has 60,000 training and 10,000 test images of 1x28x28, 6,000 and 1,000 per class, with the ten names', () => {
    expect(d.train.shape).toEqual([1, 28, 28]);
    expect([d.train.labels.length, d.val.labels.length]).toEqual([60000, 10000]);
    expect(d.classes).toEqual(FASHION_MNIST_CLASSES);
    for (const [split, per] of [
      [d.train, 6000],
      [d.val, 1000],
    ] as const)
      for (let c = 0; c < 10; c++) expect(split.labels.filter((l) => l === c).length).toBe(per);
  });

  it.skipIf(!python)('equals an independent Python reader: labels, pixel sums of chosen images, normalisation', () => {
    const script = `
import gzip, struct, json
def imgs(f):
    b = gzip.open(f).read(); n, h, w = struct.unpack('>III', b[4:16]); return b[16:], h * w
def labs(f): return list(gzip.open(f).read()[8:])
out = {}
for split, pre in (('train', 'train'), ('val', 't10k')):
    px, per = imgs('${FASHION_DIR}/%s-images-idx3-ubyte.gz' % pre)
    out[split] = {'labels': labs('${FASHION_DIR}/%s-labels-idx1-ubyte.gz' % pre),
                  'sums': [sum(px[i * per:(i + 1) * per]) for i in (0, 1, 777, len(px) // per - 1)]}
try:
    import numpy as np
    px = np.frombuffer(imgs('${FASHION_DIR}/train-images-idx3-ubyte.gz')[0], np.uint8) / 255.0
    out['stats'] = [px.mean(), px.std(ddof=1)]
except ImportError:
    pass
print(json.dumps(out))`;
    const r = spawnSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const ref = JSON.parse(r.stdout) as Record<'train' | 'val', { labels: number[]; sums: number[] }> & { stats?: number[] };
    if (ref.stats) {
      // the training split's normalisation, against numpy's float64 mean and unbiased std
      const { normalization } = loadData(`fashion-mnist:${FASHION_DIR}`);
      expect(Math.abs(normalization.mean[0] - ref.stats[0])).toBeLessThan(1e-12);
      expect(Math.abs(normalization.std[0] - ref.stats[1])).toBeLessThan(1e-12);
    }
    for (const split of ['train', 'val'] as const) {
      const s = d[split];
      expect(Array.from(s.labels)).toEqual(ref[split].labels);
      const n = s.labels.length;
      const sums = [0, 1, 777, n - 1].map((i) => s.images.subarray(i * 784, (i + 1) * 784).reduce((a, b) => a + b, 0));
      expect(sums).toEqual(ref[split].sums);
    }
  });

  it('is detected as IDX from its files; its classes are then the label numbers', () => {
    const plain = readData(FASHION_DIR, {});
    expect(plain.source).toBe(`idx:${FASHION_DIR}`);
    expect(plain.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });
});
