// The pictures, made from real CIFAR images and checked for content: sizes,
// pixels that vary, and pixel values computed by hand for the book's blur and
// edge kernels (figures 8.4, 8.5); a trained Net's saliency map and an attack
// that flips a real validation image (fixed seeds).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { Net } from '../models/book.js';
import { cifar2Data } from '../src/api/data.js';
import { signGradientAttack } from '../src/api/inside.js';
import { openModule } from '../src/api/open.js';
import { predict, saveWeights, train } from '../src/api/workflow.js';
import { look } from '../src/cli/look.js';
import { setKernel, showFigure } from '../src/cli/show.js';
import { decodeImage, type RgbaImage } from '../src/io/image.js';
import { level } from '../src/viz/raster.js';
import { svgToPng } from '../src/viz/render.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-viz-'));
const cifar = path.resolve(import.meta.dirname, '../../shared/data/cifar10');
const models = path.resolve(import.meta.dirname, '../models/book.ts');

async function png(svg: string): Promise<RgbaImage> {
  return decodeImage(await svgToPng(svg), 'figure');
}

const pixel = (img: RgbaImage, x: number, y: number) => [...img.data.subarray(4 * (y * img.width + x), 4 * (y * img.width + x) + 3)];

function distinct(img: RgbaImage): number {
  const s = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) s.add((img.data[i] << 16) | (img.data[i + 1] << 8) | img.data[i + 2]);
  return s.size;
}

/** The book's hand-set conv on x [3, 32, 32], zero padding 1: Σ over channels and the 3×3 window. */
function handConv(x: Float32Array, k: number[]): Float32Array {
  const out = new Float32Array(32 * 32);
  for (let y = 0; y < 32; y++)
    for (let xx = 0; xx < 32; xx++) {
      let s = 0;
      for (let c = 0; c < 3; c++)
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const yy = y + dy;
            const xs = xx + dx;
            if (yy >= 0 && yy < 32 && xs >= 0 && xs < 32) s += x[c * 1024 + yy * 32 + xs] * k[(dy + 1) * 3 + dx + 1];
          }
      out[y * 32 + xx] = s;
    }
  return out;
}

describe('gen show: feature maps', () => {
  it.each([
    ['blur', Array(9).fill(1 / 9)],
    ['edge-v', [-1, 0, 1, -1, 0, 1, -1, 0, 1]],
    ['edge-h', [-1, -1, -1, 0, 0, 0, 1, 1, 1]],
  ])('the %s kernel on a real CIFAR bird: each tile pixel is the hand-computed value on the colour scale', async (kernel, k) => {
    const l = await look(models, { model: 'Net', data: `cifar2:${cifar}`, index: '7', backend: 'interp' });
    expect(l.classes[l.label!]).toBe('bird');
    setKernel(l.model, 'conv1', kernel);
    const f = await showFigure(l, { layer: 'conv1', kernel });
    const hand = handConv(l.x, k);
    for (let i = 0; i < hand.length; i++) expect(f.values[i]).toBeCloseTo(hand[i], 4);
    const lo = Math.min(...hand);
    const hi = Math.max(...hand);
    expect(f.layout.scale.lo).toBeCloseTo(lo, 4);
    expect(f.layout.scale.hi).toBeCloseTo(hi, 4);
    const img = await png(f.svg);
    expect([img.width, img.height]).toEqual([f.layout.width, f.layout.height]);
    const t = f.layout.tiles[0];
    const z = f.layout.zoom;
    for (const [y, x] of [
      [10, 12],
      [0, 0],
      [31, 17],
    ]) {
      const v = level(hand[y * 32 + x], { lo, hi });
      expect(pixel(img, t.x + x * z + (z >> 1), t.y + y * z + (z >> 1)), `(${y}, ${x})`).toEqual([v, v, v]);
    }
    // the input image drawn beside it, pixel for pixel
    const iz = f.layout.input.zoom;
    expect(pixel(img, f.layout.input.x + 5 * iz + 1, f.layout.input.y + 7 * iz + 1)).toEqual(
      [0, 1, 2].map((c) => l.bytes[c * 1024 + 7 * 32 + 5]),
    );
    expect(distinct(img)).toBeGreaterThan(100);
  });

  it('all 16 channels of a random conv1 (figure 8.2) on one scale, from the shipped sample', async () => {
    const l = await look(models, { model: 'Net', index: '0', backend: 'interp' });
    const f = await showFigure(l, { layer: 'conv1' });
    expect(f.layout.tiles.map((t) => t.channel)).toEqual([...Array(16).keys()]);
    const img = await png(f.svg);
    // every tile has texture of its own
    for (const t of f.layout.tiles) {
      const s = new Set<string>();
      for (let y = 0; y < 32; y += 3)
        for (let x = 0; x < 32; x += 3) s.add(pixel(img, t.x + x * f.layout.zoom, t.y + y * f.layout.zoom).join());
      expect(s.size, `channel ${t.channel}`).toBeGreaterThan(5);
    }
  });
});

describe('a trained Net: saliency and an attack that flips a real validation image', () => {
  it('trains (fixed seed), then a targeted sign-gradient attack within 8/255 turns an airplane into a bird', async () => {
    manualSeed(0);
    const data = cifar2Data();
    const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');
    const model = await openModule(new Net(), { backend: 'cpu', outDir, maxBatch: 64 });
    await train(model, data, { epochs: 10, batchSize: 64, lr: 1e-2, seed: 0 });
    const ck = path.join(tmp, 'net.safetensors');
    saveWeights(model, ck, data);
    const l = await look(models, { model: 'Net', weights: ck, index: '3', backend: 'cpu', outDir });
    expect(l.classes[l.label!]).toBe('airplane');
    const r = await signGradientAttack(l.model, l.bytes, l.shape, l.normalization, { target: 1, label: 0, eps: 8 / 255, steps: 10 });
    expect(r.before[0]).toBeGreaterThan(0.5);
    expect(r.fooledAt).not.toBeNull();
    expect(r.after[1]).toBeGreaterThan(0.5);
    expect(r.linf).toBeLessThanOrEqual(8 / 255 + 1e-9);
    // the image as written is what fools it
    const { attackFigures, saliencyFigure } = await import('../src/cli/attack-draw.js');
    const out = path.join(tmp, 'fooled.png');
    const fig = path.join(tmp, 'attack.png');
    await attackFigures(l, r, { out, figure: fig, eps: '8/255', steps: '10' });
    expect(predict(l.model, [out], data)[0].className).toBe('bird');
    const adv = decodeImage(fs.readFileSync(out), out);
    expect([adv.width, adv.height]).toEqual([32, 32]);
    const a = decodeImage(fs.readFileSync(fig), fig);
    expect(a.width).toBeGreaterThan(3 * 160);
    expect(distinct(a)).toBeGreaterThan(200);
    // saliency of the original: a heat map that is not flat
    const { saliency } = await import('../src/api/inside.js');
    const map = await saliency(l.model, l.x, 0);
    expect(Math.max(...map)).toBeGreaterThan(3 * (map.reduce((s, v) => s + v, 0) / map.length));
    const sal = path.join(tmp, 'saliency.png');
    await saliencyFigure(l, map, 0, sal);
    const s = decodeImage(fs.readFileSync(sal), sal);
    expect(distinct(s)).toBeGreaterThan(100);
  });
});
