// The training workflow on the compiled CPU backend: exact resume, and the
// same losses as the interpreter running the same steps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetDropout } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { train } from '../src/api/workflow.js';

const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

const data = small(200);
const opts = { batchSize: 32, lr: 1e-2, momentum: 0.9, weightDecay: 1e-3, l1: 1e-5, l2: 1e-4, seed: 5 };

async function fresh(backend: 'cpu' | 'interp') {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend, seed: 3, outDir, maxBatch: 64 });
}

describe('training workflow (compiled CPU backend)', () => {
  it('a resumed run equals an uninterrupted one, bit for bit', async () => {
    const full = await fresh('cpu');
    const a = await train(full, data, { ...opts, epochs: 3 });
    const ck = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-ck-')), 'ck.safetensors');
    await train(await fresh('cpu'), data, { ...opts, epochs: 2, save: ck });
    const resumed = await fresh('cpu');
    const b = await train(resumed, data, { ...opts, epochs: 3, resume: ck });
    expect(b.losses).toEqual([a.losses[2]]);
    const sa = full.stateDict();
    const sb = resumed.stateDict();
    for (const [k, t] of sa) expect(sb.get(k)!.data, k).toEqual(t.data);
  });

  it('trains like the interpreter: same shuffles, dropout masks and SGD, float32 vs float64', async () => {
    const c = await train(await fresh('cpu'), data, { ...opts, epochs: 2 });
    const i = await train(await fresh('interp'), data, { ...opts, epochs: 2 });
    for (let e = 0; e < 2; e++) expect(Math.abs(c.losses[e] - i.losses[e])).toBeLessThan(1e-4);
  });
});
