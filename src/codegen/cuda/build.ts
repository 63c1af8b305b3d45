// gen build --backend cuda|cuda-emu|auto: writes the CUDA package beside the CPU one
// (generated/<name>/cuda/, or cuda-emu/ for the CPU emulator) and compiles it with
// cmake-js into a static library plus a Node addon. Compiling needs nvcc (or only
// g++ for the emulator), not a GPU; running needs one (create reports TK_ENODEV).
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeFiles } from '../build.js';
import { addonPath, cmakeJsCompile, readManifest, withPackageLock } from '../compile.js';
import type { Graph } from '../../graph/ir.js';
import type { Tap } from '../../graph/taps.js';
import { writeFileAtomic } from '../../util/fs.js';
import { emitCudaPackage } from './emit.js';

/** Absolute path of nvcc (PATH, then /usr/local/cuda/bin), or undefined. */
export function findNvcc(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).stdout?.trim();
  return [onPath, '/usr/local/cuda/bin/nvcc'].find((c) => c && spawnSync(c, ['--version']).status === 0) || undefined;
}

export interface CudaBuildOptions {
  /** compile after writing (default true) */
  compile?: boolean;
  /** build the kernels for the CPU emulator (g++, no nvcc or GPU needed; slow, for tests) */
  emulator?: boolean;
  /** ignore the cache */
  force?: boolean;
  /** CMAKE_CUDA_ARCHITECTURES (default "80;90": sm_80 and sm_90 code plus PTX) */
  archs?: string;
  /** train steps also compute d loss / d input, and inputGradient() works */
  inputGrad?: boolean;
  /** values kept readable after a forward */
  taps?: Tap[];
}

export interface CudaBuildResult {
  /** the CUDA package folder (generated/<name>/cuda or cuda-emu) */
  dir: string;
  prefix: string;
  written: string[];
  /** false when compile was not asked for */
  compiled: boolean;
  /** true when the build was up to date */
  cached: boolean;
  seconds: number;
}

export function cudaPackageDir(modelDir: string, emulator = false): string {
  return path.join(modelDir, emulator ? 'cuda-emu' : 'cuda');
}

function compilerId(cmd: string): string {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').slice(-2).join(' ') : '';
}

/** Writes generated/<name>/cuda[-emu]/ and compiles it unless its manifest says the same sources and compiler built it. */
export function buildCudaPackage(
  graph: Graph,
  modelDir: string,
  name: string,
  maxBatch: number,
  o: CudaBuildOptions = {},
): CudaBuildResult {
  const t0 = performance.now();
  const dir = cudaPackageDir(path.resolve(modelDir), o.emulator); // absolute: cmake-js runs in it
  return withPackageLock(dir, () => buildLocked(graph, dir, name, maxBatch, o, t0));
}

function buildLocked(graph: Graph, dir: string, name: string, maxBatch: number, o: CudaBuildOptions, t0: number): CudaBuildResult {
  const prefix = `tk_${name}_cuda`;
  const files = emitCudaPackage(graph, { name: `tk_${name}`, maxBatch, inputGrad: o.inputGrad, taps: o.taps });
  const written = writeFiles(dir, files);
  const done = (compiled: boolean, cached: boolean): CudaBuildResult => ({
    dir,
    prefix,
    written,
    compiled,
    cached,
    seconds: (performance.now() - t0) / 1000,
  });
  if (o.compile === false) return done(false, false);

  const defines: Record<string, string> = {};
  let compiler: string;
  if (o.emulator) {
    defines.TK_CUDA_EMU = 'ON';
    compiler = `emulator ${compilerId('g++')}`;
  } else {
    const nvcc = findNvcc();
    if (!nvcc)
      throw new Error('the CUDA backend needs nvcc (the CUDA toolkit) to compile; none was found on PATH or in /usr/local/cuda/bin');
    defines.CMAKE_CUDA_COMPILER = nvcc;
    if (o.archs) defines.CMAKE_CUDA_ARCHITECTURES = o.archs;
    compiler = `${compilerId(nvcc)} archs ${o.archs ?? '80;90'}`;
  }
  const h = crypto.createHash('sha256').update(compiler);
  for (const f of [...files.keys()].sort()) h.update(`\0${f}\0${files.get(f)}`);
  const key = h.digest('hex').slice(0, 32);
  const manifestFile = path.join(dir, 'build', 'manifest.json');
  if (!o.force && fs.existsSync(addonPath(dir, prefix)) && readManifest(dir)?.key === key) return done(true, true);

  cmakeJsCompile(dir, defines);
  const manifest = { key, model: graph.name, name, prefix, emulator: Boolean(o.emulator), compiler, builtAt: new Date().toISOString() };
  writeFileAtomic(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  return done(true, false);
}
