// Builds a graph into a cached compiled package (CPU, CUDA, CUDA on the CPU
// emulator; a per-graph folder under the OS temp dir unless told otherwise) and
// opens it as a src/check Backend (compiled-backend.ts).
import os from 'node:os';
import path from 'node:path';
import { buildPackage } from '../codegen/build.js';
import { buildCudaPackage } from '../codegen/cuda/build.js';
import type { Graph } from '../graph/ir.js';
import { CompiledBackend, checkPackageName as packageName } from './compiled-backend.js';
import { loadCuda } from './cuda.js';
import { load } from './index.js';

export { CompiledBackend };

export interface CompiledBackendOptions {
  /** folder of the packages (default: <tmp>/tensorkiln-packages) */
  outRoot?: string;
  name?: string;
  maxBatch?: number;
}

const defaultRoot = () => path.join(os.tmpdir(), 'tensorkiln-packages');

/** Builds (cached) and loads `graph` as a compiled CPU model. */
export async function compiledBackend(graph: Graph, o: CompiledBackendOptions = {}): Promise<CompiledBackend> {
  const r = buildPackage(graph, { outRoot: o.outRoot ?? defaultRoot(), name: o.name ?? packageName(graph), maxBatch: o.maxBatch ?? 256 });
  const model = await load(r.dir, { maxBatch: o.maxBatch ?? 256, init: false });
  return new CompiledBackend(graph, model);
}

/** Builds (cached) and loads `graph` as a CUDA model, on a GPU or on the CPU emulator. */
export async function cudaBackend(graph: Graph, o: CompiledBackendOptions & { emulator?: boolean } = {}): Promise<CompiledBackend> {
  const name = o.name ?? packageName(graph);
  const r = buildCudaPackage(graph, path.join(o.outRoot ?? defaultRoot(), name), name, o.maxBatch ?? 256, { emulator: o.emulator });
  return new CompiledBackend(graph, await loadCuda(r.dir));
}
