// The CUDA backend's generated sources compile with nvcc (when nvcc is here: no GPU needed),
// and kernels are deduplicated by signature.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { trace } from 'tensorkiln';
import { bookModels, NetResDeep } from '../models/book.js';
import { emitCudaPackage } from '../src/codegen/cuda/emit.js';

const run = promisify(execFile);
const nvcc = ['nvcc', '/usr/local/cuda/bin/nvcc'].find((c) => spawnSync(c, ['--version']).status === 0);
if (!nvcc) console.warn('cuda-compile: nvcc not found, skipping the nvcc compile test (install the CUDA toolkit to run it)');

function kernels(src: string): string[] {
  return [...src.matchAll(/__global__ void __launch_bounds__\(\d+\) (k\d+_\w+)\(/g)].map((m) => m[1]);
}

describe('CUDA package emission', () => {
  it('emits header, source, CMakeLists, the emulator header and the Node addon files', () => {
    const files = emitCudaPackage(trace(new bookModels.Net()), { name: 'tk_net', maxBatch: 64 });
    expect([...files.keys()].sort()).toEqual([
      'CMakeLists.txt',
      'README.md',
      'binding.cpp',
      'index.d.ts',
      'index.js',
      'package.json',
      'tk_cuda_emu.h',
      'tk_net_cuda.cu',
      'tk_net_cuda.h',
    ]);
    expect(files.get('binding.cpp')!).toContain('tk_net_cuda_create(&m_, device)');
    expect(files.get('index.d.ts')!).toContain('device?: number');
    expect(files.get('CMakeLists.txt')!).toContain('if(CMAKE_JS_VERSION)');
    const h = files.get('tk_net_cuda.h')!;
    for (const fn of [
      'create',
      'destroy',
      'forward',
      'train_step',
      'set_dataset',
      'train_epoch',
      'step_seed',
      'state_index',
      'get_state',
      'set_state',
      'get_grad',
      'get_momentum',
      'reset_optimizer',
      'last_error',
    ])
      expect(h).toContain(`tk_net_cuda_${fn}(`);
    expect(h).toContain('#ifndef TK_COMMON_TYPES');
    expect(files.get('CMakeLists.txt')!).toContain('CUDA::cudart_static');
    expect(files.get('CMakeLists.txt')!).toContain('"80;90"');
  });

  it('NetResDeep with 100 blocks emits the same kernels as with 2: one residual conv kernel', () => {
    const k2 = kernels(emitCudaPackage(trace(new NetResDeep({ nBlocks: 2 })), { name: 'R2', maxBatch: 64 }).get('R2_cuda.cu')!);
    const src100 = emitCudaPackage(trace(new NetResDeep({ nBlocks: 100 })), { name: 'R100', maxBatch: 64 }).get('R100_cuda.cu')!;
    const k100 = kernels(src100);
    expect(k100).toEqual(k2);
    // conv1 (+relu +maxpool), the shared residual conv in eval, and in train with BatchNorm statistics in its epilogue
    const convs = k100.filter((k) => /_conv_fwd/.test(k));
    expect(convs.length).toBe(3);
    const launches = (k: string) => src100.split(`TK_RUN(${k},`).length - 1;
    // conv1: train forward, the step's forward, eval; the residual conv: eval x100, train (forward and step) x200
    expect(convs.map(launches).sort((a, b) => a - b)).toEqual([3, 100, 200]);
    // backward: one kernel (weight + input gradient) for the 100 uses of the shared conv, a weight-gradient one for conv1
    const bwd = k100.filter((k) => k.endsWith('_conv_bwd'));
    expect(bwd.length).toBe(1);
    expect(launches(bwd[0])).toBe(100);
    expect(k100.filter((k) => k.endsWith('_conv_wgrad')).length).toBe(1);
  });

  it('rejects bad names and batch sizes', () => {
    const g = trace(new bookModels.Net());
    expect(() => emitCudaPackage(g, { name: 'my-net', maxBatch: 64 })).toThrow(/C identifier/);
    expect(() => emitCudaPackage(g, { name: 'Net', maxBatch: 0 })).toThrow(/maxBatch/);
  });
});

describe.skipIf(!nvcc)('CUDA packages compile with nvcc (sm_90)', () => {
  it('every book model', { timeout: 2_400_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-cuda-compile-'));
    try {
      const jobs = Object.entries(bookModels).map(async ([name, Model]) => {
        const pkg = path.join(dir, name);
        fs.mkdirSync(pkg);
        for (const [f, c] of emitCudaPackage(trace(new Model()), { name, maxBatch: 64 })) fs.writeFileSync(path.join(pkg, f), c);
        const r = await run(
          nvcc!,
          ['-std=c++17', '-arch=sm_90', '-O2', '-Xptxas=-v', '-diag-suppress=177', '-c', `${name}_cuda.cu`, '-o', `${name}.o`],
          { cwd: pkg, maxBuffer: 16 << 20 },
        );
        const log = r.stdout + r.stderr;
        expect(log, name).not.toMatch(/\berror\b|\bwarning\b/i);
        // no kernel spills registers to local memory
        const spills = [...log.matchAll(/(\d+) bytes spill stores/g)].map((m) => Number(m[1]));
        expect(Math.max(0, ...spills), `${name}: register spills`).toBe(0);
        expect(fs.existsSync(path.join(pkg, `${name}.o`))).toBe(true);
      });
      await Promise.all(jobs);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
