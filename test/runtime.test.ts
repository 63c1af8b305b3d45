// src/runtime: loading compiled packages, errors as exceptions (never a
// crash), the ISA guard, trainEpoch == its steps, the dropout seed rule.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '../src/codegen/build.js';
import { trace } from '../src/graph/trace.js';
import { load, stepSeed, type CompiledModel } from '../src/runtime/index.js';
import { Rng } from '../src/util/rng.js';
import { bookModels } from '../models/book.js';

const outRoot = path.join(os.tmpdir(), 'tk-test-runtime');
let dir = '';
let net: CompiledModel;
const N = 3072;

function batch(n: number, seed = 1): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  return { x: Float32Array.from({ length: n * N }, () => rng.normal()), y: Int32Array.from({ length: n }, () => rng.int(2)) };
}

beforeAll(async () => {
  const model = new bookModels.NetDropout();
  dir = buildPackage(trace(model), { outRoot, name: 'netdropout', maxBatch: 32, initialState: model.stateDict() }).dir;
  net = await load(dir);
});

describe('errors are exceptions', () => {
  it('rejects wrong array lengths and types', () => {
    const { x, y } = batch(4);
    expect(() => net.forward(x.subarray(1), 4)).toThrow(/x has 12287 floats, expected 4 x 3 x 32 x 32 = 12288/);
    expect(() => net.forward(new Float64Array(4 * N) as unknown as Float32Array, 4)).toThrow(TypeError);
    expect(() => net.trainStep(x, y.subarray(1), 4, { lr: 0.1 })).toThrow(/labels has 3 entries, expected 4/);
    expect(() => net.trainStep(x, Float32Array.from(y) as unknown as Int32Array, 4, { lr: 0.1 })).toThrow(/Int32Array/);
  });

  it('rejects batches outside [1, max batch]', () => {
    const { x } = batch(33);
    expect(() => net.forward(x.subarray(0, 0), 0)).toThrow(/batch must be in \[1, 32\], got 0/);
    expect(() => net.forward(x, 33)).toThrow(/batch must be in \[1, 32\], got 33/);
    expect(() => net.forward(x.subarray(0, 2.5 * N), 2.5)).toThrow(/integer/);
  });

  it('rejects a step counter that is not a non-negative integer (it becomes the dropout seed of each step)', () => {
    const { x, y } = batch(4);
    const order = Uint32Array.from([0, 1, 2, 3]);
    const step = net.step;
    try {
      for (const bad of [NaN, -1, 2.5]) {
        net.step = bad;
        expect(() => net.trainEpoch(x, y, 4, 4, order, { lr: 0 })).toThrow(/firstStep must be an integer in \[0, 9007199254740992\], got /);
      }
    } finally {
      net.step = step;
    }
  });

  it('rejects labels out of range and non-finite options', () => {
    const { x, y } = batch(4);
    const bad = Int32Array.from(y);
    bad[2] = 2;
    expect(() => net.trainStep(x, bad, 4, { lr: 0.1 })).toThrow(/label 2 at index 2 is out of range \[0, 2\)/);
    bad[2] = -1;
    expect(() => net.trainStep(x, bad, 4, { lr: 0.1 })).toThrow(/out of range/);
    expect(() => net.trainStep(x, y, 4, { lr: NaN })).toThrow(/lr must be a finite number/);
    expect(() => net.trainStep(x, y, 4, { lr: 0.1, momentum: Infinity })).toThrow(/momentum must be a finite number/);
    expect(() => net.trainStep(x, y, 4, {} as { lr: number })).toThrow(/lr must be a number/);
  });

  it('rejects a bad epoch order and a strict loadStateDict mismatch, changing nothing', () => {
    const { x, y } = batch(8);
    expect(() => net.trainEpoch(x, y, 8, 4, Uint32Array.from([0, 1, 2, 3, 4, 5, 6, 8]), { lr: 0.1 })).toThrow(
      /order\[7\] = 8 is not below n = 8/,
    );
    const before = net.stateDict();
    const sd = net.stateDict();
    sd.delete('fc2.bias');
    sd.set('fc3.weight', sd.get('fc2.weight')!);
    expect(() => net.loadStateDict(sd)).toThrow(/missing key 'fc2.bias'[\s\S]*unexpected key 'fc3.weight'/);
    const after = net.stateDict();
    for (const [k, t] of before) expect(after.get(k)!.data).toEqual(t.data);
  });
});

describe('runtime behaviour', () => {
  it("round-trips state_dict under PyTorch names and loads gen build's initial weights", async () => {
    const sd = net.stateDict();
    expect([...sd.keys()]).toEqual(Object.keys(JSON.parse(fs.readFileSync(path.join(dir, 'tensorkiln.json'), 'utf8')).keys));
    const other = await load(dir, { init: false });
    expect(
      other
        .stateDict()
        .get('conv1.weight')!
        .data.every((v) => v === 0),
    ).toBe(true);
    other.loadStateDict(sd);
    expect(other.stateDict().get('conv1.weight')!.data).toEqual(sd.get('conv1.weight')!.data);
  });

  it('trainEpoch gives exactly the steps it replaces (same batches, same dropout seeds)', async () => {
    const n = 20;
    const { x, y } = batch(n, 3);
    const order = new Rng(9).permutation(n);
    const a = await load(dir, { seed: 5 });
    const b = await load(dir, { seed: 5 });
    const opts = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, l2: 1e-4 };
    const r = a.trainEpoch(x, y, n, 8, order, opts);
    let loss = 0;
    for (let s = 0; s < n; s += 8) {
      const idx = order.subarray(s, Math.min(n, s + 8));
      const bx = new Float32Array(idx.length * N);
      idx.forEach((k, i) => bx.set(x.subarray(k * N, (k + 1) * N), i * N));
      loss += b.trainStep(
        bx,
        Int32Array.from(idx, (k) => y[k]),
        idx.length,
        opts,
      );
    }
    expect(r.steps).toBe(3);
    expect(a.step).toBe(3);
    expect(b.step).toBe(3);
    expect(r.loss).toBeCloseTo(loss, 5);
    for (const [k, t] of a.stateDict()) expect(b.stateDict().get(k)!.data, k).toEqual(t.data);
  });

  it('uses the one step-seed rule (rules.ts twin) and dropout differs between steps', () => {
    for (const [s, k] of [
      [0, 0],
      [7, 1],
      [123456789, 2 ** 33 + 5],
    ])
      expect(net.stepSeed.call({ seed: s }, k)).toBe(stepSeed(s, k));
    const { x } = batch(2);
    net.train();
    const a = net.forward(x, 2, 1);
    const b = net.forward(x, 2, 2);
    const c = net.forward(x, 2, 1);
    expect(a).toEqual(c);
    expect(a).not.toEqual(b);
    net.eval();
    expect(net.forward(x, 2, 1)).toEqual(net.forward(x, 2, 2));
  });

  it('refuses (or rebuilds) a build made for a CPU feature this machine lacks', async () => {
    const mf = path.join(dir, 'build', 'manifest.json');
    const saved = fs.readFileSync(mf, 'utf8');
    const m = JSON.parse(saved);
    m.isa.flags.push('avx1024_imaginary');
    fs.writeFileSync(mf, JSON.stringify(m));
    try {
      await expect(load(dir, { rebuild: false })).rejects.toThrow(/lacks avx1024_imaginary/);
      const pkg = await import(path.join(dir, 'index.js'));
      expect(() => pkg.checkBuild()).toThrow(/lacks avx1024_imaginary: rebuild it/);
      const rebuilt = await load(dir);
      expect(rebuilt.forward(batch(1).x, 1)).toHaveLength(2);
      expect(JSON.parse(fs.readFileSync(mf, 'utf8')).isa.flags).not.toContain('avx1024_imaginary');
    } finally {
      if (!fs.existsSync(mf)) fs.writeFileSync(mf, saved);
    }
  });
});

describe('TrainableModel adapter', () => {
  it('trainEpoch over a subset order, and training state resumes a run exactly', async () => {
    const { CompiledTrainable } = await import('../src/runtime/trainable.js');
    const graph = trace(new bookModels.NetDropout());
    const n = 24;
    const { x, y } = batch(n, 4);
    const opts = { lr: 0.05, momentum: 0.9 };
    const a = new CompiledTrainable(graph, await load(dir, { seed: 3 }));
    const r = a.trainEpoch(x, y, Uint32Array.from([5, 1, 7, 20, 3]), 2, opts);
    expect(r.batches).toBe(3);
    const ts = a.trainingState();
    expect([...ts.keys()]).toContain('momentum.conv1.weight');
    const b = new CompiledTrainable(graph, await load(dir, { seed: 3 }));
    b.loadStateDict(a.stateDict());
    b.loadTrainingState(ts);
    const order = new Rng(2).permutation(n);
    const ra = a.trainEpoch(x, y, order, 8, opts);
    const rb = b.trainEpoch(x, y, order, 8, opts);
    expect(rb.lossSum).toBe(ra.lossSum);
    for (const [k, t] of a.stateDict()) expect(b.stateDict().get(k)!.data, k).toEqual(t.data);
  });
});
