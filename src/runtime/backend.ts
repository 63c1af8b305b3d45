// Builds a graph into a cached compiled package (CPU, CUDA, CUDA on the CPU
// emulator) and loads it: for the API's openers (src/api/open.ts, packages in
// generated/) and for gen check (a per-graph folder under the OS temp dir),
// which drives it as a src/check Backend (compiled-backend.ts).
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { buildPackage, DEFAULT_MAX_BATCH, packageFolder } from '../codegen/build.js';
import { buildCudaPackage } from '../codegen/cuda/build.js';
import type { Graph } from '../graph/ir.js';
import type { Tap } from '../graph/taps.js';
import { CompiledBackend, packageNameOf } from './compiled-backend.js';
import { loadCuda } from './cuda.js';
import { load, type CompiledModel, type CudaModel } from './index.js';

export { CompiledBackend };

export interface CompiledBackendOptions {
  /** folder of the packages (default: <tmp>/tensorkiln-packages) */
  outRoot?: string;
  /** package name (default: packageNameOf(graph)) */
  name?: string;
  maxBatch?: number;
  /** base seed of dropout masks */
  seed?: number;
  /** recorded in a CPU package's tensorkiln.json */
  origin?: { file: string; model: string; args?: string };
  /** told when a package was (re)built */
  log?: (line: string) => void;
  /** train steps also compute d loss / d input, and inputGradient() works (a package of its own) */
  inputGrad?: boolean;
  /** values kept readable after a forward (a package of its own) */
  taps?: Tap[];
}

/** The name suffix of a package built with probes: '_ig' for input gradients, '_t<hash>' for taps. */
export function variantSuffix(o: Pick<CompiledBackendOptions, 'inputGrad' | 'taps'>): string {
  const taps = o.taps?.length ? `_t${createHash('sha256').update(JSON.stringify(o.taps)).digest('hex').slice(0, 8)}` : '';
  return (o.inputGrad ? '_ig' : '') + taps;
}

export interface CudaPackageOptions extends CompiledBackendOptions {
  /** the kernels on the CPU emulator instead of a GPU */
  emulator?: boolean;
  /** CUDA device index */
  device?: number;
}

const defaultRoot = () => path.join(os.tmpdir(), 'tensorkiln-packages');

/** Builds (when missing or stale) and loads `graph` as a compiled CPU model. */
export async function openCpuPackage(graph: Graph, o: CompiledBackendOptions = {}): Promise<CompiledModel> {
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  const name = o.name ?? packageNameOf(graph) + variantSuffix(o);
  const r = buildPackage(graph, {
    outRoot: o.outRoot ?? defaultRoot(),
    name,
    maxBatch,
    origin: o.origin,
    inputGrad: o.inputGrad,
    taps: o.taps,
  });
  if (!r.cached) o.log?.(`built ${r.dir} in ${r.seconds.toFixed(1)} s`);
  return load(r.dir, { maxBatch, seed: o.seed, init: false });
}

/** Builds (when missing or stale) and loads `graph` as a CUDA model, on a GPU or on the CPU emulator. */
export async function openCudaPackage(graph: Graph, o: CudaPackageOptions = {}): Promise<CudaModel> {
  const name = o.name ?? packageNameOf(graph) + variantSuffix(o);
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  const r = buildCudaPackage(graph, path.join(o.outRoot ?? defaultRoot(), packageFolder(name, maxBatch)), name, maxBatch, {
    emulator: o.emulator,
    inputGrad: o.inputGrad,
    taps: o.taps,
  });
  if (!r.cached) o.log?.(`built ${r.dir} in ${r.seconds.toFixed(1)} s`);
  return loadCuda(r.dir, { device: o.device, seed: o.seed });
}

export async function compiledBackend(graph: Graph, o: CompiledBackendOptions = {}): Promise<CompiledBackend> {
  return new CompiledBackend(graph, await openCpuPackage(graph, o), !!o.inputGrad, o.taps);
}

export async function cudaBackend(graph: Graph, o: CudaPackageOptions = {}): Promise<CompiledBackend> {
  return new CompiledBackend(graph, await openCudaPackage(graph, o), !!o.inputGrad, o.taps);
}
