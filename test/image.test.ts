import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { IMAGE_BYTES, SAMPLE_DIR, readCifarBatch } from '../src/data/cifar.ts';
import { toTensor } from '../src/data/transforms.ts';
import { axisTaps, loadImage } from '../src/io/image.ts';

// pngjs has no type declarations: type the encoder we use.
interface PngWriteOptions {
  colorType?: 0 | 2 | 4 | 6;
  inputColorType?: 0 | 2 | 4 | 6;
}
const { PNG } = createRequire(import.meta.url)('pngjs') as {
  PNG: { sync: { write(png: { width: number; height: number; data: Uint8Array }, opts?: PngWriteOptions): Buffer } };
};

const FIXTURES = fileURLToPath(new URL('./fixtures/images/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'image-'));
const S = 32 * 32;

type Pixel = [number, number, number, number];

/** A width x height RGBA image with pixel(x, y) = f(x, y). */
function rgba(width: number, height: number, f: (x: number, y: number) => Pixel): Uint8Array {
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(f(x, y), (y * width + x) * 4);
  return data;
}

function writePng(name: string, width: number, height: number, f: (x: number, y: number) => Pixel, opts?: PngWriteOptions): string {
  const path = join(dir, name);
  writeFileSync(path, PNG.sync.write({ width, height, data: rgba(width, height, f) }, opts));
  return path;
}

/** Channel c of output pixel (x, y), as a byte value (x 255). */
function at(img: Float32Array, c: number, x: number, y: number): number {
  return img[c * S + y * 32 + x] * 255;
}

describe('loadImage', () => {
  it('gives a solid colour back from a 64x48 PNG', () => {
    const img = loadImage(writePng('solid.png', 64, 48, () => [255, 102, 0, 255]));
    expect(img.length).toBe(3 * S);
    for (let i = 0; i < S; i++) {
      if (Math.abs(img[i] - 1) > 1e-6 || Math.abs(img[S + i] - 0.4) > 1e-6 || img[2 * S + i] !== 0) throw new Error(`pixel ${i}`);
    }
  });

  it('averages 2x2 blocks when shrinking 64x64 by two', () => {
    // Checker of single pixels: every 2x2 block averages to 127.5.
    const checker = loadImage(writePng('checker.png', 64, 64, (x, y) => ((x + y) % 2 ? [255, 255, 255, 255] : [0, 0, 0, 255])));
    expect(checker.every((v) => Math.abs(v - 0.5) < 1e-6)).toBe(true);
    // Block (0, 0) holds 0, 40 (top row) and 80, 120 (bottom row): mean 60.
    const ramp = loadImage(writePng('ramp.png', 64, 64, (x, y) => [x * 40 + y * 80, 2 * x, 0, 255]));
    expect(at(ramp, 0, 0, 0)).toBeCloseTo(60, 4);
    expect(at(ramp, 1, 5, 0)).toBeCloseTo(21, 4); // G = 2x over x = 10, 11
  });

  it('area-averages a 64x48 image (shorter side 48 -> 32, ratio 1.5)', () => {
    // Rows only: value 5y. Output row 0 covers source rows [0, 1.5): row 0
    // whole, row 1 half -> (0 + 0.5 * 5) / 1.5; row 1 covers [1.5, 3).
    const img = loadImage(writePng('rows.png', 64, 48, (_x, y) => [5 * y, 0, 0, 255]));
    expect(at(img, 0, 0, 0)).toBeCloseTo(2.5 / 1.5, 4);
    expect(at(img, 0, 31, 1)).toBeCloseTo((0.5 * 5 + 10) / 1.5, 4);
    expect(at(img, 0, 17, 31)).toBeCloseTo((0.5 * 230 + 235) / 1.5, 4);
  });

  it('centre-crops the longer side', () => {
    // 64x32: no resize, columns 16..47 kept.
    const img = loadImage(writePng('wide.png', 64, 32, (x) => [x, 0, 0, 255]));
    expect(at(img, 0, 0, 0)).toBeCloseTo(16, 4);
    expect(at(img, 0, 31, 9)).toBeCloseTo(47, 4);
    // 32x35: rows 2..33 (Python's round(1.5) = 2).
    const tall = loadImage(writePng('tall.png', 32, 35, (_x, y) => [0, y, 0, 255]));
    expect(at(tall, 1, 3, 0)).toBeCloseTo(2, 4);
  });

  it('enlarges a 16x16 image bilinearly', () => {
    // Value 10x; output column i samples x = i/2 - 0.25, clamped to [0, 15].
    const img = loadImage(writePng('small.png', 16, 16, (x) => [0, 0, 10 * x, 255]));
    expect([0, 1, 2, 30, 31].map((i) => at(img, 2, i, 4))).toEqual([0, 2.5, 7.5, 147.5, 150].map((v) => expect.closeTo(v, 4)));
  });

  it('composites transparency onto white', () => {
    const img = loadImage(writePng('alpha.png', 32, 32, (x) => (x < 16 ? [255, 0, 0, 51] : [0, 0, 255, 0])));
    // Left: 0.2 red over white -> (1, 0.8, 0.8); right: fully transparent -> white.
    expect([at(img, 0, 0, 0), at(img, 1, 0, 0), at(img, 2, 0, 0)].map((v) => Math.round(v * 100) / 100)).toEqual([255, 204, 204]);
    expect([at(img, 0, 20, 5), at(img, 1, 20, 5), at(img, 2, 20, 5)].map(Math.round)).toEqual([255, 255, 255]);
  });

  it('reads a grayscale PNG as R = G = B', () => {
    const img = loadImage(writePng('gray.png', 32, 32, (x) => [4 * x, 4 * x, 4 * x, 255], { colorType: 0 }));
    expect([at(img, 0, 10, 3), at(img, 1, 10, 3), at(img, 2, 10, 3)]).toEqual([40, 40, 40].map((v) => expect.closeTo(v, 4)));
  });

  it('reads JPEG, colour and grayscale', () => {
    const path = join(dir, 'solid.jpg');
    writeFileSync(path, jpeg.encode({ width: 40, height: 40, data: rgba(40, 40, () => [200, 100, 50, 255]) }, 100).data);
    const img = loadImage(path);
    // Lossy: within a couple of levels of the encoded colour.
    for (const [c, v] of [
      [0, 200],
      [1, 100],
      [2, 50],
    ])
      expect(Math.abs(at(img, c, 12, 20) - v)).toBeLessThan(3);
    // gray-40x20.jpg: a 1-channel JPEG, every pixel 100 (made with Pillow).
    const gray = loadImage(join(FIXTURES, 'gray-40x20.jpg'));
    expect([at(gray, 0, 0, 0), at(gray, 1, 31, 31), at(gray, 2, 16, 8)].map(Math.round)).toEqual([100, 100, 100]);
  });

  it('covers a non-square target, then centre-crops', () => {
    // 64x48 into 16 (high) x 32 (wide): width binds (scale 1/2), 32x24, rows 4..19 kept.
    const img = loadImage(
      writePng('rect.png', 64, 48, (x, y) => [4 * x, 5 * y, 0, 255]),
      [16, 32],
    );
    expect(img.length).toBe(3 * 16 * 32);
    const px = (c: number, x: number, y: number) => img[c * 512 + y * 32 + x] * 255;
    expect(px(0, 3, 0)).toBeCloseTo(4 * 6.5, 4); // source columns 6, 7
    expect(px(1, 0, 0)).toBeCloseTo(5 * 8.5, 4); // output row 0 = resized row 4 = source rows 8, 9
    expect(px(1, 0, 15)).toBeCloseTo(5 * 38.5, 4);
  });

  it('keeps a 32x32 image exactly', () => {
    const img = loadImage(writePng('exact.png', 32, 32, (x, y) => [x * 7, y * 3, (x * y) % 256, 255]));
    expect(at(img, 0, 13, 2)).toBeCloseTo(91, 4);
    expect(at(img, 1, 13, 29)).toBeCloseTo(87, 4);
    expect(at(img, 2, 30, 31)).toBeCloseTo(930 % 256, 4);
  });

  it('turns a CIFAR image saved as PNG back into its ToTensor values', () => {
    const { images } = readCifarBatch(join(SAMPLE_DIR, 'test_batch.bin.br'));
    const chw = images.subarray(5 * IMAGE_BYTES, 6 * IMAGE_BYTES);
    const path = writePng('cifar.png', 32, 32, (x, y) => [chw[y * 32 + x], chw[S + y * 32 + x], chw[2 * S + y * 32 + x], 255]);
    const img = loadImage(path);
    const expected = toTensor(chw);
    expect(img.every((v, i) => Math.abs(v - expected[i]) < 1e-6)).toBe(true);
  });

  it('names the path for missing, unsupported and corrupt files', () => {
    expect(() => loadImage(join(dir, 'nope.png'))).toThrow(`image file not found: ${join(dir, 'nope.png')}`);
    const gif = join(dir, 'a.gif');
    writeFileSync(gif, 'GIF89a....');
    expect(() => loadImage(gif)).toThrow(`${gif}: unsupported image format (expected PNG or JPEG; first bytes: 47 49 46 38 39 61 2e 2e)`);
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    expect(() => loadImage(empty)).toThrow(/empty\.png: unsupported image format .*empty file/);
    const png = join(dir, 'cut.png');
    writeFileSync(png, PNG.sync.write({ width: 32, height: 32, data: rgba(32, 32, () => [1, 2, 3, 255]) }).subarray(0, 60));
    expect(() => loadImage(png)).toThrow(`${png}: corrupt PNG image`);
    const jpg = join(dir, 'cut.jpg');
    writeFileSync(jpg, jpeg.encode({ width: 40, height: 40, data: rgba(40, 40, () => [1, 2, 3, 255]) }, 90).data.subarray(0, 200));
    expect(() => loadImage(jpg)).toThrow(`${jpg}: corrupt JPEG image`);
  });
});

describe('axisTaps', () => {
  it('has weights summing to 1 for shrinking and enlarging', () => {
    for (const [src, dst] of [
      [100, 32],
      [48, 32],
      [7, 32],
      [32, 32],
    ]) {
      for (const t of axisTaps(src, dst, 0, dst)) {
        expect(t.weight.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        expect(t.index.every((j) => j >= 0 && j < src)).toBe(true);
      }
    }
  });
});
