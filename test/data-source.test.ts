// `--data` specs: kinds named or detected, CIFAR-10 class names, class subsets
// (never silent), normalisation of any channel count, and models that do not fit.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFits, loadData, parseClasses, type ImageData } from '../src/api/data.ts';
import { evaluateReport } from '../src/api/evaluate.ts';
import { train } from '../src/api/workflow.ts';
import type { Dataset } from '../src/data/loader.ts';
import type { ChannelStats } from '../src/data/transforms.ts';
import { MNIST_CLASSES } from '../src/data/idx.ts';
import { openModule } from '../src/api/open.ts';
import { CIFAR10_CLASSES, SAMPLE_DIR, TEST_FILE, TRAIN_FILES, readCifarClasses } from '../src/data/cifar.ts';
import { selectClasses } from '../src/data/dataset.ts';
import { detectKind, parseDataSpec, readData } from '../src/data/source.ts';
import { Net } from '../models/book.ts';
import { LeNet5 } from './fixtures/data-models.ts';
import { SHARED_CIFAR, cifarRecords, idxBytes, tmpDir, writeChwPng } from './fixtures/data-files.ts';

/** A CIFAR-10 directory: batch i holds `labels`, record j's bytes all j + 10 * label; optional meta text. */
function cifarDir(labels: number[], meta?: string): string {
  const dir = tmpDir('tk-cifar-');
  for (const f of [...TRAIN_FILES, TEST_FILE])
    fs.writeFileSync(
      path.join(dir, f),
      cifarRecords(labels, (j) => (j + 10 * labels[j]) % 256),
    );
  if (meta !== undefined) fs.writeFileSync(path.join(dir, 'batches.meta.txt'), meta);
  return dir;
}

describe('parseDataSpec / detectKind', () => {
  it('takes kind:dir, detects a bare folder from its files, and defaults to the shipped sample', () => {
    expect(parseDataSpec(undefined)).toEqual({ kind: 'cifar2', dir: SAMPLE_DIR });
    expect(parseDataSpec('fashion-mnist:/x/y')).toEqual({ kind: 'fashion-mnist', dir: '/x/y' });
    const cifar = cifarDir([0]);
    expect(parseDataSpec(cifar)).toEqual({ kind: 'cifar10', dir: cifar });
    const idx = tmpDir('tk-idx-');
    fs.writeFileSync(path.join(idx, 'train-images-idx3-ubyte.gz'), idxBytes([0, 1, 1], []));
    expect(detectKind(idx)).toBe('idx');
    const folder = tmpDir('tk-folder-');
    writeChwPng(path.join(folder, 'cat', 'a.png'), new Uint8Array(12), 3, 2, 2);
    expect(detectKind(folder)).toBe('folder');
  });

  it('names an unknown kind, a missing folder, and a folder of nothing it knows', () => {
    expect(() => parseDataSpec('cifar100:/x')).toThrow(
      "--data cifar100:/x: unknown data kind 'cifar100'; kinds: cifar10, cifar2, idx, mnist, fashion-mnist, folder",
    );
    expect(() => parseDataSpec('/no/such/dir')).toThrow('data folder not found: /no/such/dir');
    expect(() => readData('cifar10:/no/such/dir', {})).toThrow('data folder not found: /no/such/dir');
    const empty = tmpDir('tk-empty-');
    fs.writeFileSync(path.join(empty, 'notes.txt'), 'hi');
    expect(() => parseDataSpec(empty)).toThrow(new RegExp(`${empty}: cannot tell the kind of data: .*--data <kind>:${empty}`));
    expect(() => readData(cifarDir([0]), { valSplit: 0.1 })).toThrow('a validation split applies to image folders only, not cifar10 data');
  });
});

describe('CIFAR-10: all ten classes unless asked', () => {
  it('reads every label with the standard names, or those of batches.meta.txt', () => {
    const d = readData(cifarDir([0, 9, 2, 5]), {});
    expect(d.classes).toEqual([...CIFAR10_CLASSES]);
    expect(Array.from(d.train.labels)).toEqual([0, 9, 2, 5, 0, 9, 2, 5, 0, 9, 2, 5, 0, 9, 2, 5, 0, 9, 2, 5]);
    const names = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n';
    expect(readData(cifarDir([1], names), {}).classes).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
  });

  it('rejects a batches.meta.txt without ten distinct names', () => {
    const few = cifarDir([0], 'a\nb\n');
    expect(() => readData(few, {})).toThrow(`${path.join(few, 'batches.meta.txt')}: 2 class names, expected 10`);
    const twice = cifarDir([0], 'a\nb\nc\nd\ne\nf\ng\nh\ni\na\n');
    expect(() => readData(twice, {})).toThrow("class name 'a' appears twice");
  });

  it('--classes keeps those classes, relabelled in the order given, with their images', () => {
    const d = readData(cifarDir([0, 9, 2, 5]), { classes: ['truck', 'airplane'] });
    expect(d.classes).toEqual(['truck', 'airplane']);
    expect(Array.from(d.val.labels)).toEqual([1, 0]);
    // record 0 (airplane) holds bytes 0, record 1 (truck) bytes 1 + 90
    expect([d.val.images[0], d.val.images[3072]]).toEqual([0, 91]);
  });

  it('cifar2 is the book subset: labels 0 and 2 as 0 and 1, named from the data', () => {
    const d = readData(`cifar2:${cifarDir([0, 9, 2, 5])}`, {});
    expect(d.classes).toEqual(['airplane', 'bird']);
    expect(Array.from(d.val.labels)).toEqual([0, 1]);
  });

  it('class choices name what is wrong', () => {
    const d = readData(cifarDir([0]), {});
    expect(() => selectClasses(d, ['airplane', 'plane'])).toThrow(/has no class 'plane'; its classes: airplane, automobile, bird/);
    expect(() => selectClasses(d, ['bird', 'bird'])).toThrow("class 'bird' is chosen twice");
    expect(() => parseClasses('bird,,cat')).toThrow('--classes bird,,cat: empty class name');
    expect(parseClasses(' bird, cat ')).toEqual(['bird', 'cat']);
  });

  it.skipIf(!fs.existsSync(SHARED_CIFAR))('the real batches.meta.txt names the labels as manifest.csv does', () => {
    const names = readCifarClasses(SHARED_CIFAR);
    expect(names).toEqual([...CIFAR10_CLASSES]);
    const rows = fs.readFileSync(path.join(SHARED_CIFAR, 'manifest.csv'), 'utf8').trim().split('\n').slice(1);
    for (const row of rows.slice(0, 2000)) {
      const [, , label, cls] = row.split(',');
      if (names[Number(label)] !== cls) throw new Error(`label ${label} is ${cls} in manifest.csv`);
    }
    const all = readData(SHARED_CIFAR, {});
    expect(all.source).toBe(`cifar10:${SHARED_CIFAR}`);
    expect(all.classes.length).toBe(10);
    expect(all.train.labels.length).toBe(10000); // nothing filtered: its two classes, all kept
    const two = readData(SHARED_CIFAR, { classes: ['airplane', 'bird'] });
    expect([two.train.labels.length, two.val.labels.length]).toEqual([10000, 2000]);
  });
});

describe('loadData: normalisation from the training split, any channel count', () => {
  it('one grayscale channel: mean and unbiased std of the training pixels only', () => {
    const dir = tmpDir('tk-idx-');
    const train = [0, 51, 102, 255, 255, 0, 51, 51]; // two 2x2 images
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), idxBytes([2, 2, 2], train));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes([2], [0, 1]));
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idxBytes([1, 2, 2], [255, 255, 255, 255]));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idxBytes([1], [1]));
    const d = loadData(`mnist:${dir}`);
    const v = train.map((b) => b / 255);
    const mean = v.reduce((a, b) => a + b) / 8;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / 7);
    expect(d.normalization.mean[0]).toBeCloseTo(mean, 12);
    expect(d.normalization.std[0]).toBeCloseTo(std, 12);
    expect(d.normalization.mean.length).toBe(1);
    expect(d.val.x[0]).toBeCloseTo((1 - mean) / std, 5);
    expect(d.train.shape).toEqual([1, 2, 2]);
    expect(d.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  });

  it('a constant channel cannot be normalised', () => {
    const dir = tmpDir('tk-idx-');
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), idxBytes([2, 1, 2], [7, 7, 7, 7]));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes([2], [0, 1]));
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idxBytes([0, 1, 2], []));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idxBytes([0], []));
    expect(() => loadData(dir)).toThrow(/channel 0 is constant .* its std is 0/);
  });
});

describe('checkFits', () => {
  it('names the model, the data and the fix when shapes or class counts differ', async () => {
    const net = await openModule(new Net(), { backend: 'interp' });
    const lenet = await openModule(new LeNet5(), { backend: 'interp' });
    const ten = loadData(cifarDir([0, 1, 2]));
    expect(() => checkFits(net, ten)).toThrow(
      /Net outputs 2 classes but cifar10:\S+ has 10 \(airplane, .*truck\); choose 2 of them with --classes name,name,… \(the book's airplanes and birds: --data cifar2:\S+\) or use a model with 10 outputs/,
    );
    expect(() => checkFits(lenet, ten)).toThrow(/LeNet5 takes 1x28x28 inputs but cifar10:\S+ holds 3x32x32 images/);
    expect(() => checkFits(net, loadData(cifarDir([0, 2]), { classes: ['bird', 'airplane'] }))).not.toThrow();
  });

  it('a hand-built 10-class 1x28x28 dataset trains through the API, typed without casts', async () => {
    const split = (n: number): Dataset => ({
      x: Float32Array.from({ length: n * 784 }, (_, k) => Math.sin(k)),
      y: Int32Array.from({ length: n }, (_, i) => i % 10),
      n,
      shape: [1, 28, 28],
    });
    const stats: ChannelStats = { mean: [0.286], std: [0.353] };
    const data: ImageData = { train: split(20), val: split(10), normalization: stats, classes: MNIST_CLASSES, source: 'by hand' };
    const lenet = await openModule(new LeNet5(), { backend: 'interp' });
    const r = await train(lenet, data, { epochs: 1, batchSize: 10, lr: 1e-2, seed: 0 });
    expect(r.losses.length).toBe(1);
    expect(Number.isFinite(r.losses[0])).toBe(true);
    expect(evaluateReport(lenet, data).val.confusion.length).toBe(10);
  });
});
