// gen build --backend cuda|auto: writes the CUDA package beside the CPU one
// (generated/<name>/cuda/) and compiles it with CMake + nvcc when nvcc is here.
// No GPU is needed to compile; running needs one (the C API reports TK_ENODEV).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeFiles } from '../build.js';
import type { Graph } from '../../graph/ir.js';
import { emitCudaPackage } from './emit.js';

export function findNvcc(): string | undefined {
  return ['nvcc', '/usr/local/cuda/bin/nvcc'].find((c) => spawnSync(c, ['--version']).status === 0);
}

export interface CudaBuildResult {
  dir: string;
  written: string[];
  /** false when nvcc is missing or compile was not asked for */
  compiled: boolean;
}

export function buildCudaPackage(graph: Graph, dir: string, name: string, maxBatch: number, compile = true): CudaBuildResult {
  const cudaDir = path.join(dir, 'cuda');
  const written = writeFiles(cudaDir, emitCudaPackage(graph, { name: `tk_${name}`, maxBatch }));
  if (!compile) return { dir: cudaDir, written, compiled: false };
  const nvcc = findNvcc();
  if (!nvcc) throw new Error('--backend cuda needs nvcc (the CUDA toolkit) to compile; none was found on PATH or in /usr/local/cuda/bin');
  const build = path.join(cudaDir, 'build');
  fs.mkdirSync(build, { recursive: true });
  const steps = [
    ['cmake', '-S', cudaDir, '-B', build, '-DCMAKE_BUILD_TYPE=Release', `-DCMAKE_CUDA_COMPILER=${path.isAbsolute(nvcc) ? nvcc : 'nvcc'}`],
    ['cmake', '--build', build, '-j', '2'],
  ];
  for (const [cmd, ...args] of steps) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`CUDA build of ${cudaDir} failed (${cmd} ${args.join(' ')}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  }
  return { dir: cudaDir, written, compiled: true };
}
