// The training workflow on the interpreter backend: loop, checkpoints, resume,
// failure modes. (Compiled backends run the same workflow in runtime tests.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetDropout, Net } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { evaluate } from '../src/api/evaluate.js';
import { loadWeights, predict, saveWeights, train } from '../src/api/workflow.js';
import { saveSafetensors, loadSafetensors } from '../src/io/safetensors.js';
import { timestamp } from '../src/train/loop.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tk-train-'));

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

const data = small(96);
const opts = { batchSize: 32, lr: 1e-2, momentum: 0.9, weightDecay: 1e-3, l2: 1e-4, seed: 5 };

async function freshDropout() {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend: 'interp', seed: 3 });
}

describe('training workflow (interpreter backend)', () => {
  // The interpreter keeps float64 weights but checkpoints hold float32, so a
  // resumed run matches to float32 rounding here; compiled backends match bit for bit.
  it('a resumed run continues the uninterrupted one (same shuffles, momentum, dropout masks)', async () => {
    const full = await freshDropout();
    const a = await train(full, data, { ...opts, epochs: 3 });
    const dir = tmp();
    const ck = path.join(dir, 'ck.safetensors');
    const first = await freshDropout();
    await train(first, data, { ...opts, epochs: 2, save: ck });
    const resumed = await freshDropout();
    const b = await train(resumed, data, { ...opts, epochs: 3, resume: ck, save: ck });
    expect(b.losses.length).toBe(1);
    expect(b.losses[0]).toBeCloseTo(a.losses[2], 7);
    const sa = full.stateDict();
    const sb = resumed.stateDict();
    for (const [k, t] of sa) {
      const got = sb.get(k)!.data;
      for (let i = 0; i < t.data.length; i++) expect(Math.abs(Number(got[i]) - Number(t.data[i])), k).toBeLessThan(1e-6);
    }
  });

  it('the same seed gives the same losses; another seed does not', async () => {
    const run = async (seed: number) => train(await freshDropout(), data, { ...opts, seed, epochs: 2 });
    const [x, y, z] = [await run(1), await run(1), await run(2)];
    expect(y.losses).toEqual(x.losses);
    expect(z.losses).not.toEqual(x.losses);
  });

  it('logs the book lines at epoch 1 and every 10th', async () => {
    const lines: string[] = [];
    await train(await openModule(new Net(), { backend: 'interp' }), small(16), {
      ...opts,
      batchSize: 16,
      epochs: 10,
      log: (l) => lines.push(l),
    });
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} Epoch 1, Training loss \d\.\d+/);
    expect(lines[1]).toMatch(/ Epoch 10, Training loss /);
    expect(timestamp(new Date(2020, 0, 16, 23, 7, 21, 889))).toBe('2020-01-16 23:07:21.889000');
  });

  it('a NaN loss stops with a clear message and keeps the last good checkpoint', async () => {
    const dir = tmp();
    const ck = path.join(dir, 'ck.safetensors');
    const model = await openModule(new Net(), { backend: 'interp' });
    await train(model, data, { ...opts, epochs: 1, save: ck });
    const before = fs.readFileSync(ck);
    await expect(train(model, data, { ...opts, lr: 1e306, epochs: 3, resume: ck, save: ck })).rejects.toThrow(
      /training loss became (NaN|Infinity) in epoch 2: stopped.*ck\.safetensors holds epoch 1/,
    );
    expect(fs.readFileSync(ck).equals(before)).toBe(true);
  });

  it('a resume with another seed, or with a bad momentum buffer, is refused and changes nothing', async () => {
    const dir = tmp();
    const ck = path.join(dir, 'ck.safetensors');
    const model = await openModule(new Net(), { backend: 'interp' });
    await train(model, data, { ...opts, epochs: 1, save: ck });
    const fresh = await openModule(new Net(), { backend: 'interp' });
    const before = fresh.stateDict();
    await expect(train(fresh, data, { ...opts, seed: 6, epochs: 2, resume: ck })).rejects.toThrow(
      /ck\.safetensors was trained with --seed 5; resume it with the same \(got 6\)/,
    );
    const bad = loadSafetensors(ck);
    const key = [...bad.tensors.keys()].find((k) => k.startsWith('train.momentum.'))!;
    bad.tensors.set(key, { ...bad.tensors.get(key)!, shape: [1], data: new Float32Array(1) });
    const badFile = path.join(dir, 'bad.safetensors');
    saveSafetensors(badFile, bad.tensors, bad.metadata);
    await expect(train(fresh, data, { ...opts, epochs: 2, resume: badFile })).rejects.toThrow(
      /training state: 'momentum\.\S+' has 1 values, expected \d+/,
    );
    for (const [k, t] of fresh.stateDict()) expect(t.data, k).toEqual(before.get(k)!.data);
  });

  it('rejects a checkpoint of another model and a truncated one, naming the file', async () => {
    const dir = tmp();
    const ck = path.join(dir, 'net.safetensors');
    const net = await openModule(new Net(), { backend: 'interp' });
    saveWeights(net, ck, data);
    const other = await openModule(new NetDropout(), { backend: 'interp' });
    expect(() => loadWeights(other, ck)).toThrow(/net\.safetensors was saved from model Net \(graph [0-9a-f]+\), not this NetDropout/);
    const cut = path.join(dir, 'cut.safetensors');
    fs.writeFileSync(cut, fs.readFileSync(ck).subarray(0, 5000));
    expect(() => loadWeights(net, cut)).toThrow(/cut\.safetensors/);
    // a plain state_dict of another shape lists the problems
    const sd = loadSafetensors(ck).tensors;
    sd.delete('fc2.bias');
    saveSafetensors(path.join(dir, 'plain.safetensors'), sd);
    expect(() => loadWeights(net, path.join(dir, 'plain.safetensors'))).toThrow(/missing key 'fc2\.bias'/);
  });

  it('weights saved and loaded give the same accuracy and predictions', async () => {
    const dir = tmp();
    const ck = path.join(dir, 'w.safetensors');
    const a = await openModule(new Net(), { backend: 'interp' });
    await train(a, data, { ...opts, epochs: 1 });
    saveWeights(a, ck, data, 1);
    const b = await openModule(new Net(), { backend: 'interp' });
    expect(loadWeights(b, ck)).toEqual({ normalization: data.normalization, classes: ['airplane', 'bird'] });
    expect(evaluate(b, data)).toEqual(evaluate(a, data));
    const img = path.resolve(import.meta.dirname, 'fixtures/images/gray-40x20.jpg');
    const [p] = predict(b, [img], data);
    expect(p.className).toMatch(/^(airplane|bird)$/);
    expect(p.probabilities[0] + p.probabilities[1]).toBeCloseTo(1, 6);
    expect(predict(a, [img], data)[0].probabilities).toEqual(p.probabilities);
  });
});
