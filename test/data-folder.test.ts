// The image-folder reader (torchvision ImageFolder): hand-made folders, every
// malformed-folder error, and a folder of real CIFAR images as PNGs, read back
// byte for byte and trained on end to end through `gen train`.
import fs from 'node:fs';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { loadData } from '../src/api/data.ts';
import { evaluateReport } from '../src/api/evaluate.ts';
import { openModule } from '../src/api/open.ts';
import { predict } from '../src/api/workflow.ts';
import { IMAGE_BYTES, readCifarBatch } from '../src/data/cifar.ts';
import { loadImageFolder } from '../src/data/folder.ts';
import { toInputBytes } from '../src/data/image-input.ts';
import { GrayNet } from './fixtures/data-models.ts';
import { SHARED_CIFAR, bookNet, tmpDir, writeChwPng } from './fixtures/data-files.ts';

/** A 2x3 RGB image whose bytes are `base + k`. */
const tiny = (base: number) => Uint8Array.from({ length: 18 }, (_, k) => base + k);

describe('loadImageFolder', () => {
  it('classes sorted by name, files by path (nested too), other files ignored; every 5th file held out by default', () => {
    const root = tmpDir('tk-folder-');
    // 'B' sorts before 'a' (code points, as Python's sorted)
    for (let i = 0; i < 10; i++) writeChwPng(path.join(root, 'a', `${i}.png`), tiny(i), 3, 2, 3);
    writeChwPng(path.join(root, 'B', 'z', 'deep.png'), tiny(100), 3, 2, 3);
    writeChwPng(path.join(root, 'B', 'm.png'), tiny(120), 3, 2, 3);
    fs.writeFileSync(path.join(root, 'a', 'notes.txt'), 'not an image');
    fs.writeFileSync(path.join(root, 'a', '.DS_Store'), '');
    const d = loadImageFolder(root, [3, 2, 3]);
    expect(d.classes).toEqual(['B', 'a']);
    expect(d.source).toBe(`folder:${root}`);
    // B: m.png, z/deep.png (both train: 2 files hold out none); a: 0..9 minus 4 and 9
    expect(Array.from(d.train.labels)).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    const firsts = (r: typeof d.train) => Array.from({ length: r.labels.length }, (_, i) => r.images[i * 18]);
    expect(firsts(d.train)).toEqual([120, 100, 0, 1, 2, 3, 5, 6, 7, 8]);
    expect(firsts(d.val)).toEqual([4, 9]);
    expect(Array.from(d.train.images.subarray(0, 18))).toEqual(Array.from(tiny(120)));
    expect(loadImageFolder(root, [3, 2, 3], 0).val.labels.length).toBe(0);
  });

  it('uses train/ and val/ (or test/) when both exist', () => {
    const root = tmpDir('tk-folder-');
    for (const [split, cls, base] of [
      ['train', 'cat', 1],
      ['train', 'dog', 2],
      ['test', 'cat', 3],
      ['test', 'dog', 4],
    ] as const)
      writeChwPng(path.join(root, split, cls, 'x.png'), tiny(base), 3, 2, 3);
    const d = loadImageFolder(root, [3, 2, 3]);
    expect(d.classes).toEqual(['cat', 'dog']);
    expect([d.train.images[0], d.train.images[18], d.val.images[0], d.val.images[18]]).toEqual([1, 2, 3, 4]);
  });

  it('resizes and centre-crops to the model input, any H x W: a 2x pixel-repeated image comes back exactly', () => {
    const root = tmpDir('tk-folder-');
    writeChwPng(path.join(root, 'c', 'big.png'), tiny(7), 3, 2, 3, 2); // 4x6
    writeChwPng(
      path.join(root, 'c', 'wide.png'),
      Uint8Array.from({ length: 3 * 2 * 5 }, (_, k) => k * 8),
      3,
      2,
      5,
    ); // crop columns 1..3
    const d = loadImageFolder(root, [3, 2, 3], 0);
    expect(Array.from(d.train.images.subarray(0, 18))).toEqual(Array.from(tiny(7)));
    const wide = Array.from(d.train.images.subarray(18, 36));
    expect(wide.slice(0, 6)).toEqual([8, 16, 24, 48, 56, 64]); // R rows 0 and 1, columns 1..3 of 5
  });

  it('grayscale for a 1-channel model: ITU-R 601 luma (PIL "L"), as bytes', () => {
    const img = { width: 1, height: 1, data: new Uint8Array([100, 150, 200, 255]) };
    // (299 * 100 + 587 * 150 + 114 * 200) / 1000 = 140.75
    expect(Array.from(toInputBytes(img, [1, 1, 1]))).toEqual([141]);
    expect(Array.from(toInputBytes(img, [3, 1, 1]))).toEqual([100, 150, 200]);
  });

  it('reads JPEGs', () => {
    const root = tmpDir('tk-folder-');
    fs.mkdirSync(path.join(root, 'red'));
    const data = new Uint8Array(8 * 8 * 4).map((_, i) => [200, 30, 40, 255][i % 4]);
    fs.writeFileSync(path.join(root, 'red', 'a.JPG'), jpeg.encode({ width: 8, height: 8, data }, 100).data);
    const d = loadImageFolder(root, [3, 4, 4], 0);
    for (const [c, v] of [200, 30, 40].entries()) expect(Math.abs(d.train.images[c * 16 + 5] - v)).toBeLessThan(4);
  });

  it('names every malformed folder', () => {
    const root = tmpDir('tk-folder-');
    expect(() => loadImageFolder(path.join(root, 'nope'), [3, 2, 2])).toThrow(`image folder not found: ${path.join(root, 'nope')}`);
    expect(() => loadImageFolder(root, [3, 2, 2])).toThrow(`image folder ${root} has no class folders`);
    fs.mkdirSync(path.join(root, 'empty'));
    writeChwPng(path.join(root, 'full', 'a.png'), tiny(0), 3, 2, 3);
    expect(() => loadImageFolder(root, [3, 2, 2])).toThrow(`image folder ${root}: no PNG or JPEG images in class folder(s) empty`);
    fs.rmdirSync(path.join(root, 'empty'));
    expect(() => loadImageFolder(root, [2, 2, 2])).toThrow(
      'the model takes 2x2x2 inputs; images can feed only 1 (grayscale) or 3 (RGB) channels',
    );
    expect(() => loadImageFolder(root, [3, 2, 2], 1)).toThrow('validation split must be in [0, 1), got 1');
    fs.writeFileSync(path.join(root, 'full', 'b.png'), 'not a png');
    expect(() => loadImageFolder(root, [3, 2, 2])).toThrow(`${path.join(root, 'full', 'b.png')}: unsupported image format`);
    fs.writeFileSync(path.join(root, 'full', 'b.png'), fs.readFileSync(path.join(root, 'full', 'a.png')).subarray(0, 40));
    expect(() => loadImageFolder(root, [3, 2, 2])).toThrow(`${path.join(root, 'full', 'b.png')}: corrupt PNG image`);
    fs.writeFileSync(path.join(root, 'full', 'b.png'), fs.readFileSync(path.join(root, 'full', 'a.png')));
    fs.writeFileSync(path.join(root, 'full', 'c.webp'), 'RIFF');
    expect(() => loadImageFolder(root, [3, 2, 2])).toThrow(`${path.join(root, 'full', 'c.webp')}: only PNG and JPEG images can be read`);

    const split = tmpDir('tk-folder-');
    writeChwPng(path.join(split, 'train', 'cat', 'a.png'), tiny(0), 3, 2, 3);
    writeChwPng(path.join(split, 'train', 'dog', 'a.png'), tiny(0), 3, 2, 3);
    writeChwPng(path.join(split, 'val', 'cat', 'a.png'), tiny(0), 3, 2, 3);
    expect(() => loadImageFolder(split, [3, 2, 3])).toThrow(`folder:${split}: train/ has classes cat, dog but val/ has cat`);
  });
});

describe.skipIf(!fs.existsSync(SHARED_CIFAR))('a folder of 300 real CIFAR images as PNGs', () => {
  // The first 150 airplanes and 150 birds of the real test batch; every third saved 2x pixel-repeated (64x64).
  const batch = readCifarBatch(path.join(SHARED_CIFAR, 'test_batch.bin'));
  const picked: Record<'airplane' | 'bird', number[]> = { airplane: [], bird: [] };
  batch.labels.forEach((l, i) => {
    const cls = l === 0 ? 'airplane' : 'bird';
    if (picked[cls].length < 150) picked[cls].push(i);
  });
  const root = tmpDir('tk-cifar-folder-');
  for (const [cls, idx] of Object.entries(picked))
    idx.forEach((src, k) => {
      const chw = batch.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES);
      writeChwPng(path.join(root, cls, `${String(k).padStart(4, '0')}.png`), chw, 3, 32, 32, k % 3 === 0 ? 2 : 1);
    });
  /** CIFAR indices in the reader's order: class by class, file order, every 5th held out. */
  const expected = (val: boolean) => Object.values(picked).flatMap((idx) => idx.filter((_, k) => (k % 5 === 4) === val));

  it('reads back the CIFAR bytes exactly, in ImageFolder order', () => {
    const d = loadImageFolder(root, [3, 32, 32]);
    for (const [split, val] of [
      [d.train, false],
      [d.val, true],
    ] as const) {
      const src = expected(val);
      expect(split.labels.length).toBe(src.length);
      src.forEach((s, i) => {
        const a = batch.images.subarray(s * IMAGE_BYTES, (s + 1) * IMAGE_BYTES);
        if (Buffer.compare(a, split.images.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES)) !== 0) throw new Error(`image ${i}`);
        if (split.labels[i] !== (batch.labels[s] === 0 ? 0 : 1)) throw new Error(`label ${i}`);
      });
    }
  });

  it('a grayscale model gets the luma of the CIFAR pixels', async () => {
    const d = loadData(`folder:${root}`, { input: [1, 32, 32] });
    const src = expected(false)[7];
    const rgb = batch.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES);
    const gray = loadImageFolder(root, [1, 32, 32]).train.images.subarray(7 * 1024, 8 * 1024);
    let off = 0;
    for (let p = 0; p < 1024; p++) {
      const luma = (299 * rgb[p] + 587 * rgb[1024 + p] + 114 * rgb[2048 + p]) / 1000;
      const diff = Math.abs(gray[p] - luma);
      if (diff > 0.5 + 1e-3) throw new Error(`pixel ${p}: ${gray[p]} vs ${luma}`);
      if (diff > 0.5 - 1e-3) off++; // a tie may round either way
    }
    expect(off).toBeLessThan(30);
    // and it trains and reports through the API
    const model = await openModule(new GrayNet(), { backend: 'interp' });
    const r = evaluateReport(model, d);
    expect(r.classes).toEqual(['airplane', 'bird']);
    expect(r.val.confusion.flat().reduce((a, b) => a + b)).toBe(60);
  });

  it('gen train → eval → predict on the folder, class names from the folder names, the split kept in the checkpoint', () => {
    const ck = path.join(tmpDir('tk-folder-ck-'), 'net.safetensors');
    const t = bookNet('train', '--data', `folder:${root}`, '--val-split', '0.1', '--epochs', '30', '--batch-size', '16', '--save', ck);
    expect(t.err).toBe('');
    expect(t.code).toBe(0);
    expect(t.out).toContain(`Data folder:${root}: 2 classes (airplane, bird), 270 train / 30 val images of 3x32x32`);
    const val = Number(/Accuracy val: (0\.\d+)/.exec(t.out)![1]);
    expect(val).toBeGreaterThan(0.65); // airplanes and birds separate well above chance even from 270 images

    const e = bookNet('eval', '--data', root, '--weights', ck, '--json');
    expect(e.err).toBe('');
    const r = JSON.parse(e.out);
    expect(r.classes).toEqual(['airplane', 'bird']);
    expect(r.val.accuracy).toBeCloseTo(val, 4);
    expect(r.val.perClass.map((c: { n: number }) => c.n)).toEqual([15, 15]); // the training run's split, not the default

    const img = path.join(root, 'bird', '0009.png'); // a held-out bird
    const p = bookNet('predict', '--weights', ck, img, '--top', '2');
    expect(p.err).toBe('');
    expect(p.out).toMatch(new RegExp(`^${img}: (airplane|bird) 0\\.\\d{3}, (airplane|bird) 0\\.\\d{3}\\n$`));
  });

  it('predict on a folder image equals the model on the same image read by the folder reader', async () => {
    const model = await openModule(new GrayNet(), { backend: 'interp' });
    const gray = loadData(`folder:${root}`, { input: [1, 32, 32] });
    const [p] = predict(model, [path.join(root, 'airplane', '0004.png')], gray);
    model.eval();
    const logits = model.forward(gray.val.x.subarray(0, 1024), 1);
    const e = logits.map((v) => Math.exp(v));
    const sum = e[0] + e[1];
    expect(p.probabilities[0]).toBeCloseTo(e[0] / sum, 6);
    expect(p.className).toBe(gray.classes[logits[0] >= logits[1] ? 0 : 1]);
  });
});
