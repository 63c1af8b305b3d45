// The CUDA package from Node: built with cmake-js, loaded through its addon, driven by
// the same API and training loop as the CPU one. CI has no GPU, so the kernels run on
// the CPU emulator (backend 'cuda-emu', the same generated source compiled with g++);
// with nvcc here, the real GPU build is compiled too and must fail to load with a JS
// error that names the missing device, leaving the process running.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { F, manualSeed, nn, torch, trace, type Tensor } from 'tensorkiln';
import type { HostTensor } from '../src/graph/ir.js';
import { Interpreter } from '../src/interp/index.js';
import { BnFirst } from './fixtures/bn-first.js';
import { cudaBackend } from '../src/runtime/backend.js';
import { Net, NetDropout } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { evaluate } from '../src/api/evaluate.js';
import { loadWeights, saveWeights, train } from '../src/api/workflow.js';
import { formatReport, listGoldenCases, runGoldenCase } from '../src/check/golden.js';
import { backendFactory } from '../src/cli/backends.js';
import { buildCudaPackage, findNvcc } from '../src/codegen/cuda/build.js';
import { loadCuda } from '../src/runtime/cuda.js';
import type { CudaModel } from '../src/runtime/index.js';
import type { CompiledTrainable } from '../src/runtime/trainable.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const GOLDEN = path.resolve(ROOT, '../shared/golden');
const haveGolden = fs.existsSync(path.join(GOLDEN, 'Net', 'case.json'));
const gxx = spawnSync('g++', ['--version']).status === 0;
const nvcc = findNvcc();
const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

async function fresh(backend: 'cuda-emu' | 'interp' | 'cpu') {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend, seed: 3, outDir, maxBatch: 64 });
}

describe.skipIf(!gxx)('CUDA package in Node, kernels on the CPU emulator', () => {
  const data = small(160);
  const opts = { batchSize: 32, lr: 1e-2, momentum: 0.9, weightDecay: 1e-3, l1: 1e-5, l2: 1e-4, seed: 5 };

  it('resident training equals the interpreter: shuffles, dropout masks, momentum, penalties', { timeout: 1_200_000 }, async () => {
    const cuda = await fresh('cuda-emu');
    expect(cuda.device).toMatch(/emulation/);
    const c = await train(cuda, data, { ...opts, epochs: 2 });
    const i = await train(await fresh('interp'), data, { ...opts, epochs: 2 });
    for (let e = 0; e < 2; e++) expect(Math.abs(c.losses[e] - i.losses[e]), `epoch ${e + 1}`).toBeLessThan(1e-4);
    expect(c.trainAccuracy).toBeCloseTo(i.trainAccuracy, 2);
    expect(c.valAccuracy).toBeCloseTo(i.valAccuracy, 2);
  });

  it('augmented training (random crop, flip) equals the interpreter running the TS reference', { timeout: 1_200_000 }, async () => {
    const augment = { crop: 4, flip: true };
    const cuda = await fresh('cuda-emu');
    const c = await train(cuda, data, { ...opts, epochs: 2, augment });
    const interp = await fresh('interp');
    const i = await train(interp, data, { ...opts, epochs: 2, augment });
    const plain = await fresh('cuda-emu');
    await train(plain, data, { ...opts, epochs: 2 });
    for (let e = 0; e < 2; e++) expect(Math.abs(c.losses[e] - i.losses[e]), `epoch ${e + 1}`).toBeLessThan(1e-4);
    const diff = (a: Map<string, HostTensor>, b: Map<string, HostTensor>) => {
      let worst = 0;
      for (const [k, t] of a)
        if (t.dtype === 'F32')
          for (let j = 0; j < t.data.length; j++) worst = Math.max(worst, Math.abs(Number(t.data[j]) - Number(b.get(k)!.data[j])));
      return worst;
    };
    const same = diff(cuda.stateDict(), interp.stateDict());
    expect(same).toBeLessThan(1e-4);
    // augmentation did happen: without it the weights are far from both
    expect(diff(cuda.stateDict(), plain.stateDict())).toBeGreaterThan(100 * same);
    // and off again: the same model trains like the interpreter without it
    const c2 = await train(cuda, data, { ...opts, seed: 6, epochs: 1 });
    const i2 = await train(interp, data, { ...opts, seed: 6, epochs: 1 });
    expect(Math.abs(c2.losses[0] - i2.losses[0])).toBeLessThan(1e-4);
    expect(diff(cuda.stateDict(), interp.stateDict())).toBeLessThan(1e-4);
  });

  it(
    'a resumed run (momentum buffers and step count through the checkpoint) equals an uninterrupted one, bit for bit',
    { timeout: 1_200_000 },
    async () => {
      const full = await fresh('cuda-emu');
      const a = await train(full, data, { ...opts, epochs: 3 });
      const ck = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-cuda-ck-')), 'ck.safetensors');
      await train(await fresh('cuda-emu'), data, { ...opts, epochs: 2, save: ck });
      const resumed = await fresh('cuda-emu');
      const b = await train(resumed, data, { ...opts, epochs: 3, resume: ck });
      expect(b.losses).toEqual([a.losses[2]]);
      const sb = resumed.stateDict();
      for (const [k, t] of full.stateDict()) expect(sb.get(k)!.data, k).toEqual(t.data);
    },
  );

  it(
    'setDataset uploads an array changed in place, which trainEpoch alone would keep (same array, n and sampled values)',
    { timeout: 1_200_000 },
    async () => {
      const x = data.train.x.slice(0, 64 * 3072);
      const y = data.train.y.slice(0, 64);
      const order = Uint32Array.from({ length: 64 }, (_, i) => (i * 37) % 64);
      const step = { lr: 1e-2, momentum: 0.9 };
      const cuda = (await fresh('cuda-emu')) as CompiledTrainable;
      const cpu = await fresh('cpu');
      const native = cuda.model as CudaModel;
      const a0 = native.trainEpoch(x, y, 64, 32, order, step);
      const b0 = cpu.trainEpoch(x, y, order, 32, step);
      expect(Math.abs(a0.loss - b0.lossSum)).toBeLessThan(1e-5);
      for (let i = 0; i < x.length; i++) if (i % 48 !== 0) x[i] = Math.sin(i); // the fingerprint samples every 48th value here
      native.setDataset(x, y);
      const a1 = native.trainEpoch(x, y, 64, 32, order, step);
      const b1 = cpu.trainEpoch(x, y, order, 32, step);
      expect(Math.abs(a1.loss - b1.lossSum)).toBeLessThan(1e-5);
    },
  );

  it('weights saved from CUDA load into the CPU backend and classify the same', { timeout: 1_200_000 }, async () => {
    const cuda = await fresh('cuda-emu');
    await train(cuda, data, { ...opts, epochs: 1 });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-cuda-ck-')), 'w.safetensors');
    saveWeights(cuda, file, data, 1);
    const cpu = await fresh('cpu');
    loadWeights(cpu, file);
    expect(evaluate(cpu, data)).toEqual(evaluate(cuda, data));
    cpu.eval();
    cuda.eval();
    const x = data.val.x.subarray(0, 8 * 3072);
    const a = cpu.forward(x, 8);
    const b = cuda.forward(x, 8);
    for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - b[k])).toBeLessThan(1e-5);
  });

  it.skipIf(!haveGolden)(
    'gen check --backend cuda-emu: every PyTorch golden case passes, 20-step ones (momentum, wd, L1, L2, BatchNorm buffers) included',
    { timeout: 1_800_000 },
    async () => {
      const factory = await backendFactory('cuda-emu');
      const extra = path.join(ROOT, 'test/fixtures/golden-extra');
      const cases = [...listGoldenCases(GOLDEN), ...listGoldenCases(extra)];
      expect(cases.length).toBeGreaterThanOrEqual(9);
      for (const dir of cases) {
        const r = await runGoldenCase(dir, factory, { modelFile: path.join(ROOT, 'models/book.ts') });
        expect(r.pass, formatReport(r)).toBe(true);
      }
    },
  );

  it(
    'a conv shared between a pooled and an unpooled use sums both weight gradients (different blockings)',
    { timeout: 600_000 },
    async () => {
      class SharedConv extends nn.Module {
        static inputShape = [4, 16, 16];
        conv = new nn.Conv2d(4, 4, { kernelSize: 3, padding: 1 });
        fc = new nn.Linear(4 * 8 * 8, 2);
        forward(x: Tensor): Tensor {
          const a = torch.relu(this.conv(x)); // no pool: four output channels per weight-gradient block
          return this.fc(torch.flatten(F.maxPool2d(torch.relu(this.conv(a)), 2))); // fused pool: one per block
        }
      }
      manualSeed(3);
      const model = new SharedConv();
      const graph = trace(model);
      const state = model.stateDict() as Map<string, HostTensor>;
      const interp = new Interpreter(graph, state);
      const cuda = await cudaBackend(graph, { emulator: true, outRoot: outDir, maxBatch: 8 });
      cuda.loadState(state);
      const x = Float32Array.from({ length: 8 * 4 * 16 * 16 }, (_, i) => Math.sin(i * 0.37));
      const y = Array.from({ length: 8 }, (_, i) => i % 2);
      for (let s = 0; s < 3; s++) {
        const step = { lr: 0.05, momentum: 0.9 };
        const ri = interp.trainStep(x, y, 8, step);
        const rc = cuda.trainStep(x, y, 8, step);
        expect(Math.abs(rc.loss - ri.loss), `step ${s} loss`).toBeLessThan(1e-5);
        const g = ri.grads.get('conv.weight')!;
        const d = Math.max(...Array.from(g, (v, i) => Math.abs(v - rc.grads.get('conv.weight')![i])));
        expect(d / Math.max(...Array.from(g, Math.abs)), `step ${s} conv.weight grad`).toBeLessThan(1e-4);
      }
    },
  );

  it('BatchNorms whose inputs need no gradient (the model input, an average pool of it)', { timeout: 600_000 }, async () => {
    manualSeed(4);
    const model = new BnFirst();
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    const interp = new Interpreter(graph, state);
    const cuda = await cudaBackend(graph, { emulator: true, outRoot: outDir, maxBatch: 8 });
    cuda.loadState(state);
    const x = Float32Array.from({ length: 4 * 3 * 8 * 8 }, (_, i) => Math.cos(i * 0.21));
    const y = [0, 1, 2, 1];
    for (let s = 0; s < 2; s++) {
      const ri = interp.trainStep(x, y, 4, { lr: 0.05 });
      const rc = cuda.trainStep(x, y, 4, { lr: 0.05 });
      expect(Math.abs(rc.loss - ri.loss), `step ${s} loss`).toBeLessThan(1e-5);
      for (const [k, g] of ri.grads) {
        const d = Math.max(...Array.from(g, (v, i) => Math.abs(v - rc.grads.get(k)![i])));
        expect(d / (Math.max(...Array.from(g, Math.abs)) + 1e-12), `step ${s} ${k}`).toBeLessThan(1e-4);
      }
    }
  });

  it('misuse is a JS error naming the problem; no device is one too', { timeout: 600_000 }, async () => {
    const r = buildCudaPackage(trace(new Net()), path.join(outDir, 'net_cuda_misuse'), 'net_cuda_misuse', 16, { emulator: true });
    const m = await loadCuda(r.dir);
    expect(() => m.forward(new Float32Array(3072), 2)).toThrow(/x has 3072 floats, expected 2 x 3 x 32 x 32 = 6144/);
    expect(() => m.forward(new Float32Array(17 * 3072), 17)).toThrow(/batch must be in \[1, 16\], got 17/);
    expect(() => m.trainStep(new Float32Array(3072), Int32Array.of(5), 1, { lr: 0.1 })).toThrow(/label/);
    expect(() => m.loadStateDict(new Map())).toThrow(/missing key 'conv1.weight'/);
    await expect(loadCuda(r.dir, { maxBatch: 64 })).rejects.toThrow(/maxBatch 64 is above the 16/);
    process.env.TK_EMU_DEVICES = '0';
    try {
      await expect(loadCuda(r.dir)).rejects.toThrow(/Net \(CUDA\): .*no CUDA device available/);
    } finally {
      delete process.env.TK_EMU_DEVICES;
    }
    expect(m.eval().forward(new Float32Array(3072), 1)).toHaveLength(2);
    expect(() => m.setAugment(200, true, new Float32Array(3))).toThrow(/augment crop padding must be in \[0, 127\], got 200/);
    expect(() => m.setAugment(4, true, null)).toThrow(/a crop needs the fill values/);
    expect(() => m.setAugment(4, true, new Float32Array(2))).toThrow(/augment fill must hold 3 values/);
    expect(() => m.setAugment(0, false, null)).not.toThrow();
  });
});

describe.skipIf(!nvcc)('CUDA package in Node, real GPU build', () => {
  it('compiles with nvcc; without a GPU, loading throws a JS error and the process carries on', { timeout: 2_400_000 }, async () => {
    const r = buildCudaPackage(trace(new Net()), path.join(outDir, 'net_cuda_gpu'), 'net_cuda_gpu', 64, { archs: '90' });
    expect(fs.existsSync(path.join(r.dir, 'build', 'Release', 'tk_net_cuda_gpu_cuda.node'))).toBe(true);
    const again = buildCudaPackage(trace(new Net()), path.join(outDir, 'net_cuda_gpu'), 'net_cuda_gpu', 64, { archs: '90' });
    expect(again.cached).toBe(true);
    const gpu = spawnSync('nvidia-smi', ['-L']).status === 0;
    if (gpu) {
      const m = await loadCuda(r.dir);
      expect(m.emulator).toBe(false);
      return;
    }
    await expect(loadCuda(r.dir)).rejects.toThrow(
      /Net \(CUDA\): tk_net_cuda_gpu_cuda: no CUDA device available \(cudaGetDeviceCount: .+\); this package needs an NVIDIA GPU and driver/,
    );
    await expect(openModule(new Net(), { backend: 'cuda', outDir, name: 'net_cuda_gpu', maxBatch: 64 })).rejects.toThrow(
      /no CUDA device available/,
    );
  });
});
