// Looking inside through the API: activations and input gradients on the
// compiled CPU backend equal the interpreter's (PyTorch's: golden-inside.test.ts),
// change no state, and misuse is an error naming what is wrong.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetResDeep } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import type { TrainableModel } from '../src/train/model.js';
import { Rng } from '../src/util/rng.js';
import { buildPackage } from '../src/codegen/build.js';
import { resolveTaps } from '../src/graph/taps.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { load } from '../src/runtime/index.js';
import { loadCuda } from '../src/runtime/cuda.js';
import { buildCudaPackage } from '../src/codegen/cuda/build.js';

const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');
const B = 5;
const rng = new Rng(7);
const x = Float32Array.from({ length: B * 3 * 32 * 32 }, () => rng.normal());
const labels = Int32Array.from({ length: B }, (_, i) => i % 2);

async function open(backend: 'cpu' | 'cuda-emu' | 'interp'): Promise<TrainableModel> {
  manualSeed(21);
  const m = await openModule(new NetResDeep({ nChans1: 4, nBlocks: 3 }), { backend, outDir, maxBatch: 8 });
  // BatchNorm statistics off their initial 0 and 1, so eval and train modes differ
  m.train();
  for (let i = 0; i < 3; i++)
    m.forward(
      x.map((v) => 2 * v + 0.5),
      B,
    );
  return m;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const snapshot = (m: TrainableModel) => [...m.stateDict()].map(([k, t]) => [k, Array.from(t.data, Number)] as const);

describe('activations and input gradients (API)', () => {
  const names = ['conv1', 'resblocks.1', 'resblocks.2.batch_norm', '#0', 'fc2'];
  it.each([
    ['cpu', false],
    ['cpu', true],
    ['cuda-emu', false],
    ['cuda-emu', true],
  ] as const)('%s equals the interpreter, train mode %s, and no state changes', async (backend, train) => {
    const [cpu, interp] = [await open(backend), await open('interp')];
    const before = snapshot(cpu);
    const a = await cpu.activations(x, names, { train, seed: 3 });
    const b = await interp.activations(x, names, { train, seed: 3 });
    expect([...a.keys()]).toEqual(names);
    for (const n of names) {
      expect(a.get(n)!.shape, n).toEqual(b.get(n)!.shape);
      expect(maxDiff(a.get(n)!.data, b.get(n)!.data), n).toBeLessThan(1e-4 * Math.max(1, maxAbs(b.get(n)!.data)));
    }
    expect(a.get('#0')!.data).toEqual(x);
    const ga = await cpu.inputGradient(x, labels, { train, seed: 3 });
    const gb = await interp.inputGradient(x, labels, { train, seed: 3 });
    expect(maxDiff(ga.grad, gb.grad)).toBeLessThan(1e-4 * maxAbs(gb.grad));
    expect(Math.abs(ga.loss - gb.loss)).toBeLessThan(1e-5);
    expect(snapshot(cpu)).toEqual(before);
  });

  it.each(['cpu', 'cuda-emu'] as const)(
    'a %s package built with taps (gen build --taps) hands them out after a forward',
    async (backend) => {
      const model = new NetResDeep({ nChans1: 4, nBlocks: 3 });
      const graph = trace(model);
      const taps = resolveTaps(graph, ['conv1', 'resblocks.2']);
      const name = `netresdeep_taps_test`;
      const pkg =
        backend === 'cpu'
          ? await load(buildPackage(graph, { outRoot: outDir, name, maxBatch: 8, taps, initialState: model.stateDict() }).dir)
          : await loadCuda(buildCudaPackage(graph, path.join(outDir, name), name, 8, { emulator: true, taps }).dir);
      pkg.loadStateDict(model.stateDict());
      expect(pkg.taps.map((t) => [t.name, t.node])).toEqual(taps.map((t) => [t.name, t.node]));
      const got = pkg.eval().activations(x, B);
      const ref = new Interpreter(graph, model.stateDict()).activations(
        x,
        B,
        taps.map((t) => t.node),
        { train: false },
      );
      taps.forEach((t, i) => {
        const a = got.get(t.name)!;
        expect(a.shape).toEqual([B, ...t.shape]);
        expect(maxDiff(a.data, Float32Array.from(ref[i]))).toBeLessThan(1e-4 * Math.max(1, maxAbs(Float32Array.from(ref[i]))));
      });
      expect(() => pkg.inputGradient(x, labels, B)).toThrow(/built without input gradients/);
    },
  );

  it('eval and train mode differ where BatchNorm does, and misuse names the problem', async () => {
    const m = await open('interp');
    const e = await m.inputGradient(x, labels);
    const t = await m.inputGradient(x, labels, { train: true });
    expect(maxDiff(e.grad, t.grad)).toBeGreaterThan(1e-3 * maxAbs(e.grad));
    await expect(m.activations(x, ['conv9'])).rejects.toThrow(/NetResDeep has no module or node 'conv9'; modules: conv1 \[B, 4, 32, 32\]/);
    await expect(m.activations(x.subarray(1), ['conv1'])).rejects.toThrow(/not a whole batch/);
    await expect(m.inputGradient(x, labels.subarray(1))).rejects.toThrow(/4 labels for a batch of 5/);
  });
});
