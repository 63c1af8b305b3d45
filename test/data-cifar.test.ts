import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { IMAGE_BYTES, RECORD_BYTES, cifar2, loadCifar10, loadCifar2, readCifarBatch, readCifarBytes } from '../src/data/cifar.ts';

const REAL_DIR = process.env.CIFAR10_DIR ?? '/work/shared/data/cifar10';

/** n records; record i has label labels[i] and every pixel byte equal to i. */
function fakeRecords(labels: number[]): Uint8Array {
  const out = new Uint8Array(labels.length * RECORD_BYTES);
  labels.forEach((label, i) => {
    out[i * RECORD_BYTES] = label;
    out.fill(i, i * RECORD_BYTES + 1, (i + 1) * RECORD_BYTES);
  });
  return out;
}

function count(labels: Int32Array, value: number): number {
  return labels.filter((l) => l === value).length;
}

describe('readCifarBytes / readCifarBatch', () => {
  it('splits records into CHW image bytes and labels', () => {
    const { images, labels } = readCifarBytes(fakeRecords([3, 9, 0]), 'fake');
    expect(Array.from(labels)).toEqual([3, 9, 0]);
    expect(images.length).toBe(3 * IMAGE_BYTES);
    expect(images[0]).toBe(0);
    expect(images[IMAGE_BYTES]).toBe(1);
    expect(images[3 * IMAGE_BYTES - 1]).toBe(2);
  });

  it('names the missing file and the expected layout', () => {
    expect(() => readCifarBatch('/nonexistent/data_batch_1.bin')).toThrow(/not found: \/nonexistent\/data_batch_1\.bin.*3073-byte records/);
  });

  it('names the file and size of a truncated file', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'cifar-')), 'cut.bin');
    writeFileSync(path, fakeRecords([0, 2]).subarray(0, RECORD_BYTES + 100));
    expect(() => readCifarBatch(path)).toThrow(`${path}: size 3173 bytes is not a multiple of 3073`);
  });

  it('names the record with a bad label', () => {
    expect(() => readCifarBytes(fakeRecords([0, 2, 10]), 'bad.bin')).toThrow('bad.bin: record 2 (byte offset 6146) has label 10');
  });

  it('reads brotli-compressed files and reports bad compressed data', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cifar-'));
    writeFileSync(join(dir, 'a.bin.br'), brotliCompressSync(fakeRecords([2, 0])));
    expect(Array.from(readCifarBatch(join(dir, 'a.bin.br')).labels)).toEqual([2, 0]);
    writeFileSync(join(dir, 'b.bin.br'), 'not brotli at all');
    expect(() => readCifarBatch(join(dir, 'b.bin.br'))).toThrow(/b\.bin\.br is not valid brotli data/);
  });
});

describe('loadCifar10 / cifar2', () => {
  it('lists every missing batch file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cifar-'));
    writeFileSync(join(dir, 'data_batch_1.bin'), fakeRecords([0]));
    writeFileSync(join(dir, 'data_batch_2.bin.br'), brotliCompressSync(fakeRecords([2])));
    expect(() => loadCifar10(dir)).toThrow(`${dir} lacks data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin`);
  });

  it('concatenates the five training batches in order and mixes plain and compressed files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cifar-'));
    for (let i = 1; i <= 5; i++) {
      const bytes = fakeRecords([i, 0]);
      if (i % 2 === 0) writeFileSync(join(dir, `data_batch_${i}.bin.br`), brotliCompressSync(bytes));
      else writeFileSync(join(dir, `data_batch_${i}.bin`), bytes);
    }
    writeFileSync(join(dir, 'test_batch.bin'), fakeRecords([9]));
    const { train, val } = loadCifar10(dir);
    expect(Array.from(train.labels)).toEqual([1, 0, 2, 0, 3, 0, 4, 0, 5, 0]);
    expect(Array.from(val.labels)).toEqual([9]);
  });

  it('cifar2 keeps airplanes as 0 and birds as 1, in order, with their images', () => {
    const raw = readCifarBytes(fakeRecords([0, 1, 2, 3, 2, 0]), 'fake');
    const two = cifar2(raw);
    expect(Array.from(two.labels)).toEqual([0, 1, 1, 0]);
    // Pixel bytes equal the source record index: records 0, 2, 4, 5 kept.
    expect([0, 1, 2, 3].map((i) => two.images[i * IMAGE_BYTES + 100])).toEqual([0, 2, 4, 5]);
  });
});

describe.skipIf(!existsSync(REAL_DIR))('real CIFAR-10 airplanes and birds', () => {
  const { train, val } = loadCifar10(REAL_DIR);

  it('has 10,000 training and 2,000 test images of labels 0 and 2 only', () => {
    expect(train.labels.length).toBe(10000);
    expect(val.labels.length).toBe(2000);
    expect(train.images.length).toBe(10000 * IMAGE_BYTES);
    expect(count(train.labels, 0) + count(train.labels, 2)).toBe(10000);
    expect(count(val.labels, 0) + count(val.labels, 2)).toBe(2000);
  });

  it('is balanced after the cifar2 mapping', () => {
    const two = loadCifar2(REAL_DIR);
    expect([count(two.train.labels, 0), count(two.train.labels, 1)]).toEqual([5000, 5000]);
    expect([count(two.val.labels, 0), count(two.val.labels, 1)]).toEqual([1000, 1000]);
  });

  it('matches manifest.csv label for label, first record included', () => {
    const rows = readFileSync(join(REAL_DIR, 'manifest.csv'), 'utf8').trim().split('\n').slice(1);
    expect(rows.length).toBe(12000);
    const first = rows[0].split(',');
    expect(first.slice(0, 3)).toEqual(['data_batch_1.bin', '0', String(train.labels[0])]);
    // Records are numbered per file; training files follow each other in order.
    const offsets = new Map<string, number>();
    let seen = 0;
    for (const row of rows) {
      const [file, record, label] = row.split(',');
      if (!offsets.has(file)) offsets.set(file, file === 'test_batch.bin' ? 0 : seen);
      if (file !== 'test_batch.bin') seen++;
      const labels = file === 'test_batch.bin' ? val.labels : train.labels;
      if (labels[(offsets.get(file) as number) + Number(record)] !== Number(label)) {
        throw new Error(`label mismatch at ${row}`);
      }
    }
  });

  it('keeps the image bytes of a record as in the file', () => {
    const bytes = readFileSync(join(REAL_DIR, 'test_batch.bin'));
    const i = 1234;
    expect(
      Buffer.compare(
        bytes.subarray(i * RECORD_BYTES + 1, (i + 1) * RECORD_BYTES),
        val.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES),
      ),
    ).toBe(0);
  });
});
