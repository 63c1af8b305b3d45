// Runs generated CUDA packages on the CPU through templates/cuda/tk_cuda_emu.h (real
// barrier and warp-shuffle semantics, CUDA-graph capture and replay) and checks them with
// scripts/gpu/harness.cpp against PyTorch's golden numbers and the reference interpreter:
// the same check scripts/gpu-check.sh runs on a GPU.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trace } from 'tensorkiln';
import { bookModels } from '../models/book.js';
import { goldenCase, interpreterCase, MOMENTUM_HYPER, pkgName, save, writePackage } from '../tools/export-reference.js';

const run = promisify(execFile);
const gxx = spawnSync('g++', ['--version']).status === 0;
if (!gxx) console.warn('cuda-emu: g++ not found, skipping the emulated CUDA checks');
const ROOT = path.resolve(import.meta.dirname, '..');
const GOLDEN = path.resolve(ROOT, '../shared/golden');
const haveGolden = fs.existsSync(path.join(GOLDEN, 'Net', 'case.json'));

describe.skipIf(!gxx)('CUDA kernels on the CPU emulator', () => {
  let dir = '';
  const harness = (pkg: string) => path.join(dir, `h_${pkg}`);

  async function build(pkg: string): Promise<void> {
    const inc = path.join(dir, 'pkg', pkg);
    const flags = ['-std=c++17', '-O1', '-U_FORTIFY_SOURCE', `-I${inc}`];
    await run('g++', [...flags, '-x', 'c++', '-DTK_CUDA_EMU', '-c', path.join(inc, `${pkg}_cuda.cu`), '-o', path.join(dir, `${pkg}.o`)]);
    await run('g++', [
      ...flags,
      `-DTK_PKG=${pkg}`,
      path.join(ROOT, 'scripts/gpu/harness.cpp'),
      path.join(dir, `${pkg}.o`),
      '-o',
      harness(pkg),
    ]);
  }

  async function check(pkg: string, kase: string, env: Record<string, string> = {}): Promise<string> {
    try {
      const r = await run(harness(pkg), ['check', path.join(dir, 'ref', `${kase}.safetensors`)], {
        env: { ...process.env, ...env },
        maxBuffer: 16 << 20,
      });
      return r.stdout;
    } catch (e) {
      const err = e as { stdout?: string; code?: number };
      return `${err.stdout ?? ''}\nexit ${err.code}`;
    }
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-cuda-emu-'));
    fs.mkdirSync(path.join(dir, 'ref'));
    for (const m of ['Net', 'NetDropout', 'NetBatchNorm'] as const) writePackage(dir, pkgName(m), trace(new bookModels[m]()));
    const d = interpreterCase('NetDropout', 'NetDropout.momentum', 'tk_netdropout', MOMENTUM_HYPER, 3, true, 7);
    save(dir, 'NetDropout.momentum', d, d.meta!);
    if (haveGolden)
      for (const c of ['Net', 'Net_l2', 'Net_wd', 'NetBatchNorm']) {
        const g = goldenCase(path.join(GOLDEN, c), `golden.${c}`, pkgName(c.startsWith('Net_') ? 'Net' : c));
        save(dir, `golden.${c}`, g.tensors, g.meta);
      }
    await Promise.all(['tk_net', 'tk_netdropout', 'tk_netbatchnorm'].map(build));
  }, 300_000);

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!haveGolden)(
    'Net equals PyTorch: logits, loss, gradients, SGD step (plain, weight decay, L2 penalty)',
    { timeout: 600_000 },
    async () => {
      for (const c of ['Net', 'Net_wd', 'Net_l2']) {
        const out = await check('tk_net', `golden.${c}`);
        expect(out, out).toMatch(new RegExp(`^CASE golden\\.${c} PASS`, 'm'));
      }
    },
  );

  it.skipIf(!haveGolden)(
    'NetBatchNorm equals PyTorch, also with the threads of each block run in reverse order',
    { timeout: 1_200_000 },
    async () => {
      for (const env of [{}, { TK_EMU_REVERSE: '1' }] as Record<string, string>[]) {
        const out = await check('tk_netbatchnorm', 'golden.NetBatchNorm', env);
        expect(out, out).toMatch(/^CASE golden\.NetBatchNorm PASS/m);
        expect(out).toMatch(/CHECK \S+ after\.conv1_batchnorm\.num_batches_tracked PASS/);
      }
    },
  );

  it(
    'NetDropout equals the interpreter: dropout masks, momentum steps, a resident epoch with and without CUDA graphs',
    { timeout: 1_200_000 },
    async () => {
      const out = await check('tk_netdropout', 'NetDropout.momentum');
      expect(out, out).toMatch(/^CASE NetDropout\.momentum PASS/m);
      expect(out).toMatch(/epoch\(graphs\)\.loss_sum PASS/);
      expect(out).toMatch(/epoch\(direct\)\.after\.fc1\.weight PASS/);
    },
  );

  it('no CUDA device is an error message, not a crash', { timeout: 300_000 }, async () => {
    for (const pkg of ['tk_net', 'tk_netdropout']) {
      const o = await check(pkg, 'NetDropout.momentum', { TK_EMU_DEVICES: '0' });
      expect(o).toMatch(/^NODEVICE .*no CUDA device available/m);
      expect(o).toMatch(/exit 3/);
    }
  });
});
