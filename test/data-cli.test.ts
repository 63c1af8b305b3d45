// gen train | eval | predict on data beyond CIFAR-2, as a user runs them: a
// 10-class model on CIFAR-10-format data, class subsets asked for by name,
// and LeNet-5 on the real Fashion-MNIST. Fixture models build their packages
// in a scratch directory (gen runs there), not in generated/.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_FILE, TRAIN_FILES } from '../src/data/cifar.ts';
import { readIdx } from '../src/data/idx.ts';
import { FASHION_DIR, cifarRecords, bookNet, gen, repoFile, tmpDir, writeChwPng } from './fixtures/data-files.ts';

const NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
const models = repoFile('test/fixtures/data-models.ts');

/** Pixel k (CHW) of an image of class c, sample i: dim noise, and a bright 8x8 patch at grid cell c of 4x4. */
function pixel(c: number, i: number, k: number): number {
  const [y, x] = [Math.floor((k % 1024) / 32), k % 32];
  const noise = (Math.imul(i * 3073 + k + 1, 2654435761) >>> 24) % 90;
  return Math.floor(y / 8) * 4 + Math.floor(x / 8) === c ? 160 + noise : noise;
}

/** A CIFAR-10-format folder of 10 learnable classes named by its batches.meta.txt. */
function tenClassDir(): string {
  const dir = tmpDir('tk-cifar10-');
  const labels = (n: number) => Array.from({ length: n }, (_, i) => i % 10);
  TRAIN_FILES.forEach((f, b) => {
    const l = labels(100);
    fs.writeFileSync(
      path.join(dir, f),
      cifarRecords(l, (i, k) => pixel(l[i], b * 100 + i, k)),
    );
  });
  const t = labels(200);
  fs.writeFileSync(
    path.join(dir, TEST_FILE),
    cifarRecords(t, (i, k) => pixel(t[i], 9000 + i, k)),
  );
  fs.writeFileSync(path.join(dir, 'batches.meta.txt'), NAMES.join('\n') + '\n\n');
  return dir;
}

describe('CIFAR-10-format data, all ten classes', () => {
  const dir = tenClassDir();
  const work = tmpDir('tk-cli10-');
  const ck = path.join(work, 'net10.safetensors');

  it('a 10-class model trains through gen train; eval and predict use the names from batches.meta.txt', () => {
    const t = gen(work, 'train', models, '--model', 'Net10', '--data', dir, '--epochs', '8', '--batch-size', '32', '--save', ck);
    expect(t.err).toBe('');
    expect(t.out).toContain(`Data cifar10:${dir}: 10 classes (${NAMES.join(', ')}), 500 train / 200 val images of 3x32x32`);
    expect(Number(/Accuracy val: (0\.\d+|1\.0+)/.exec(t.out)![1])).toBeGreaterThan(0.8);

    const e = gen(work, 'eval', models, '--model', 'Net10', '--data', dir, '--weights', ck, '--json');
    expect(e.err).toBe('');
    const r = JSON.parse(e.out);
    expect(r.classes).toEqual(NAMES);
    expect(r.val.perClass.map((c: { n: number }) => c.n)).toEqual(new Array(10).fill(20));
    // per-class accuracy is the confusion diagonal over the row
    r.val.perClass.forEach((c: { accuracy: number }, i: number) => expect(c.accuracy).toBeCloseTo(r.val.confusion[i][i] / 20, 12));
    const text = gen(work, 'eval', models, '--model', 'Net10', '--data', dir, '--weights', ck).out;
    expect(text).toMatch(/Per-class accuracy \(val\):\n {2}zero {3}\d\.\d{4} {2}\(20 images\)\n/);
    expect(text).toMatch(/Confusion matrix \(val; rows: true class, columns: predicted\):\n\s+zero\s+one\s+two/);

    // a test image of class 3 (sample 3 of the test batch) as a PNG
    const img = path.join(work, 'three.png');
    writeChwPng(
      img,
      Uint8Array.from({ length: 3072 }, (_, k) => pixel(3, 9003, k)),
      3,
      32,
      32,
    );
    const p = gen(work, 'predict', models, '--model', 'Net10', '--weights', ck, img, '--top', '3');
    expect(p.err).toBe('');
    expect(p.out).toMatch(new RegExp(`^${img}: three 0\\.\\d{3}, [a-z]+ 0\\.\\d{3}, [a-z]+ 0\\.\\d{3}\\n$`));
    const j = JSON.parse(gen(work, 'predict', models, '--model', 'Net10', '--weights', ck, img, '--json').out);
    expect(j[0].probabilities.length).toBe(10);
    expect(j[0].top).toEqual([{ label: 3, className: 'three', probability: j[0].probabilities[3] }]);
  });

  it('a 2-class model is refused all ten (never a silent filter), and trains on the classes asked for', () => {
    const r = bookNet('train', '--data', dir, '--epochs', '1');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^gen: Net outputs 2 classes but cifar10:\S+ has 10 \(zero, one, .*nine\); choose 2 of them with --classes/);
    const two = path.join(work, 'two.safetensors');
    const t = bookNet('train', '--data', dir, '--classes', 'seven,two', '--epochs', '2', '--save', two);
    expect(t.err).toBe('');
    expect(t.out).toContain(`Data cifar10:${dir}: 2 classes (seven, two), 100 train / 40 val images of 3x32x32`);
    // eval takes the classes from the checkpoint; another --classes is refused
    const e = JSON.parse(bookNet('eval', '--data', dir, '--weights', two, '--json').out);
    expect(e.classes).toEqual(['seven', 'two']);
    expect(e.val.n).toBe(40);
    const bad = bookNet('eval', '--data', dir, '--weights', two, '--classes', 'two,seven');
    expect(bad.err).toMatch(/two\.safetensors was trained on classes seven, two; --classes two,seven differs/);
    // a 10-class model's package does not take 1x28x28 data
    const lenetOnCifar = gen(work, 'train', models, '--model', 'LeNet5', '--data', dir, '--epochs', '1');
    expect(lenetOnCifar.err).toMatch(/LeNet5 takes 1x28x28 inputs but cifar10:\S+ holds 3x32x32 images/);
  });
});

describe.skipIf(!fs.existsSync(FASHION_DIR))(
  'LeNet-5 on the real Fashion-MNIST (skipped without: apt-get install dataset-fashion-mnist)',
  () => {
    it('trains, evaluates and predicts with the Fashion-MNIST names', () => {
      const work = tmpDir('tk-lenet-');
      const ck = path.join(work, 'lenet.safetensors');
      const data = `fashion-mnist:${FASHION_DIR}`;
      const t = gen(
        work,
        'train',
        models,
        '--model',
        'LeNet5',
        '--data',
        data,
        '--epochs',
        '3',
        '--limit',
        '10000',
        '--momentum',
        '0.9',
        '--save',
        ck,
      );
      expect(t.err).toBe('');
      expect(t.out).toContain(
        `Data ${data}: 10 classes (T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot)`,
      );
      expect(t.out).toContain('10000 train / 10000 val images of 1x28x28');
      expect(Number(/Accuracy val: (0\.\d+)/.exec(t.out)![1])).toBeGreaterThan(0.7);

      const r = JSON.parse(gen(work, 'eval', models, '--model', 'LeNet5', '--data', data, '--weights', ck, '--json').out);
      expect(r.val.n).toBe(10000);
      expect(r.val.perClass.map((c: { n: number }) => c.n)).toEqual(new Array(10).fill(1000));
      expect(r.val.confusion.flat().reduce((a: number, b: number) => a + b)).toBe(10000);

      // the first test image (an ankle boot, label 9) as a 28x28 grayscale PNG; the weights carry names and normalisation
      const images = readIdx(path.join(FASHION_DIR, 't10k-images-idx3-ubyte.gz')).data.subarray(0, 784);
      const img = path.join(work, 'boot.png');
      writeChwPng(img, images, 1, 28, 28);
      const p = JSON.parse(gen(work, 'predict', models, '--model', 'LeNet5', '--weights', ck, img, '--json', '--top', '10').out);
      expect(p[0].top.map((x: { className: string }) => x.className).sort()).toEqual([...r.classes].sort());
      expect(p[0].className).toBe('Ankle boot');
    });
  },
);
