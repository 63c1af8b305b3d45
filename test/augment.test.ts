// Augmentation (random crop with padding, horizontal flip): the TS reference against
// hand-computed crops, its draws, and the CPU runtime's C twin against it through a
// training epoch (same seed, same crops and flips, so the same weights as the interpreter).
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetDropout } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { train, type TrainOptions } from '../src/api/workflow.js';
import {
  augmentBatch,
  augmentDraw,
  augmentSample,
  blackFill,
  checkAugment,
  parseAugment,
  resolveAugment,
  type Augment,
} from '../src/data/augment.js';
import { normalize } from '../src/data/transforms.js';
import { hashBelow } from '../src/ops/hash.js';
import { stepSeed } from '../src/train/rules.js';
import type { HostTensor } from '../src/graph/ir.js';

const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');

describe('augmentation reference (src/data/augment.ts)', () => {
  // one channel, 3x3: 1 2 3 / 4 5 6 / 7 8 9; padding 1, fill -1
  const src = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const a: Augment = { crop: 1, flip: true, fill: [-1] };
  const out = (dy: number, dx: number, flip: boolean) => {
    const o = new Float32Array(9);
    augmentSample(src, [1, 3, 3], { dy, dx, flip }, a, o);
    return [...o];
  };

  it('crops the padded image as torchvision RandomCrop(padding) does, then flips', () => {
    expect(out(1, 1, false)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]); // the centre window is the image
    // window at top 0, left 2 of the padded 5x5: out[y][x] = src[y - 1][x + 1]
    expect(out(0, 2, false)).toEqual([-1, -1, -1, 2, 3, -1, 5, 6, -1]);
    // the same window mirrored: out[y][x] = window[y][2 - x]
    expect(out(0, 2, true)).toEqual([-1, -1, -1, -1, 3, 2, -1, 6, 5]);
    expect(out(1, 1, true)).toEqual([3, 2, 1, 6, 5, 4, 9, 8, 7]);
    expect(out(2, 0, false)).toEqual([-1, 4, 5, -1, 7, 8, -1, -1, -1]);
  });

  it('fills each channel with its own value', () => {
    const two = Float32Array.from([1, 2, 3, 4, 10, 20, 30, 40]); // 2 channels of 2x2
    const o = new Float32Array(8);
    augmentSample(two, [2, 2, 2], { dy: 0, dx: 0, flip: false }, { crop: 1, flip: false, fill: [-1, -2] }, o);
    expect([...o]).toEqual([-1, -1, -1, 1, -2, -2, -2, 10]);
  });

  it('draws offsets in [0, 2p] and flips from the hash of (step seed, sample), uniformly', () => {
    const seed = stepSeed(7, 3);
    const counts = new Array(9).fill(0);
    let flips = 0;
    const n = 9000;
    for (let b = 0; b < n; b++) {
      const d = augmentDraw(seed, b, { crop: 4, flip: true });
      expect(d).toEqual({
        dy: hashBelow(seed, 0x61756700, 3 * b, 9),
        dx: hashBelow(seed, 0x61756700, 3 * b + 1, 9),
        flip: hashBelow(seed, 0x61756700, 3 * b + 2, 2) === 1,
      });
      counts[d.dy]++;
      if (d.flip) flips++;
    }
    // 1000 expected per offset (sd ~30), 4500 flips (sd ~47)
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
    expect(Math.abs(flips - n / 2)).toBeLessThan(250);
    // off means the centre window and no flip, whatever the hash says
    expect(augmentDraw(seed, 5, { crop: 0, flip: false })).toEqual({ dy: 0, dx: 0, flip: false });
    // another step draws otherwise
    const other = Array.from({ length: 32 }, (_, b) => augmentDraw(stepSeed(7, 4), b, { crop: 4, flip: true }));
    const same = Array.from({ length: 32 }, (_, b) => augmentDraw(seed, b, { crop: 4, flip: true }));
    expect(other).not.toEqual(same);
  });

  it('hashBelow is ((hash >> 8) * n) >> 24, within [0, n)', () => {
    for (let i = 0; i < 1000; i++) {
      const v = hashBelow(11, 3, i, 9);
      expect(Number.isInteger(v) && v >= 0 && v < 9).toBe(true);
    }
    expect(hashBelow(1, 2, 3, 1)).toBe(0);
    expect(() => hashBelow(1, 2, 3, 257)).toThrow(/1\.\.256/);
  });

  it('a batch is augmented per sample, reproducibly', () => {
    const x = Float32Array.from({ length: 2 * 3 * 8 * 8 }, (_, i) => i);
    const aug: Augment = { crop: 2, flip: true, fill: [0, 0, 0] };
    const b1 = augmentBatch(x, 2, [3, 8, 8], aug, 99);
    expect(b1).toEqual(augmentBatch(x, 2, [3, 8, 8], aug, 99));
    expect(b1).not.toEqual(augmentBatch(x, 2, [3, 8, 8], aug, 100));
    const one = new Float32Array(192);
    augmentSample(x.subarray(192), [3, 8, 8], augmentDraw(99, 1, aug), aug, one);
    expect(b1.subarray(192)).toEqual(one);
  });

  it('pads with a black pixel as normalised (the recipe crops before ToTensor and Normalize)', () => {
    const stats = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };
    const black = normalize(new Uint8Array(3), stats, [3, 1, 1]);
    expect(blackFill(stats)).toEqual([...black]);
    expect(resolveAugment({ crop: 4, flip: true }, stats)).toEqual({ crop: 4, flip: true, fill: [...black] });
    expect(resolveAugment({}, stats)).toBeUndefined();
    expect(resolveAugment({ crop: 0, flip: false }, stats)).toBeUndefined();
  });

  it('parses --augment and rejects what it does not know', () => {
    expect(parseAugment('crop,flip')).toEqual({ crop: 4, flip: true });
    expect(parseAugment('crop=2')).toEqual({ crop: 2 });
    expect(parseAugment('flip')).toEqual({ flip: true });
    expect(parseAugment('none')).toEqual({});
    expect(() => parseAugment('crop,rotate')).toThrow(/unknown 'rotate'/);
    expect(() => parseAugment('crop=200')).toThrow(/at most 127/);
    expect(() => parseAugment('crop=-1')).toThrow(/unknown 'crop=-1'/);
    expect(() => checkAugment({ crop: 4, flip: true, fill: [0] }, [3, 32, 32])).toThrow(/3 finite values/);
    expect(() => checkAugment({ crop: 1.5, flip: true, fill: [0] }, [1, 8, 8])).toThrow(/integer in 0\.\.127/);
  });
});

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

async function fresh(backend: 'cpu' | 'interp') {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend, seed: 3, outDir, maxBatch: 64 });
}

function maxDiff(a: Map<string, HostTensor>, b: Map<string, HostTensor>): number {
  let m = 0;
  for (const [k, t] of a) {
    const u = b.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) m = Math.max(m, Math.abs(Number(t.data[i]) - Number(u[i])));
  }
  return m;
}

describe('augmentation in the CPU training epoch (native) equals the TS reference', () => {
  const data = small(96);
  const opts: TrainOptions = { epochs: 1, batchSize: 16, lr: 5e-2, momentum: 0.9, seed: 5 };
  const augment = { crop: 4, flip: true };

  it('one augmented epoch on the CPU and on the interpreter: same losses and weights', async () => {
    const cpu = await fresh('cpu');
    const c = await train(cpu, data, { ...opts, augment, epochs: 2 });
    const interp = await fresh('interp');
    const i = await train(interp, data, { ...opts, augment, epochs: 2 });
    const plain = await fresh('cpu');
    const p = await train(plain, data, { ...opts, epochs: 2 });
    const wc = cpu.stateDict();
    const same = maxDiff(wc, interp.stateDict());
    const differ = maxDiff(wc, plain.stateDict());
    for (let e = 0; e < 2; e++) expect(Math.abs(c.losses[e] - i.losses[e])).toBeLessThan(1e-4);
    expect(same).toBeLessThan(1e-4);
    // augmentation did happen: without it the weights are far from both
    expect(differ).toBeGreaterThan(100 * same);
    expect(Math.abs(c.losses[1] - p.losses[1])).toBeGreaterThan(1e-3);
  });

  it('the same seed gives the same crops (bit for bit); flip alone and crop alone each follow the reference', async () => {
    const a = await train(await fresh('cpu'), data, { ...opts, augment });
    const b = await train(await fresh('cpu'), data, { ...opts, augment });
    expect(b.losses).toEqual(a.losses);
    for (const only of [{ flip: true }, { crop: 2 }]) {
      const c = await fresh('cpu');
      const i = await fresh('interp');
      await train(c, data, { ...opts, augment: only });
      await train(i, data, { ...opts, augment: only });
      expect(maxDiff(c.stateDict(), i.stateDict()), JSON.stringify(only)).toBeLessThan(1e-4);
    }
  });

  it('turning augmentation off again on the same model trains without it', async () => {
    const c = await fresh('cpu');
    const i = await fresh('interp');
    for (const m of [c, i]) await train(m, data, { ...opts, augment });
    const r1 = await train(c, data, { ...opts, seed: 6 });
    const r2 = await train(i, data, { ...opts, seed: 6 });
    expect(Math.abs(r1.losses[0] - r2.losses[0])).toBeLessThan(1e-4);
    expect(maxDiff(c.stateDict(), i.stateDict())).toBeLessThan(1e-4);
  });
});
