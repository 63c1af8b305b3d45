// The compiled backends (CPU, CUDA, CUDA on the CPU emulator) behind src/check's
// Backend interface: builds the graph into a cached package (a per-graph folder
// under the OS temp dir unless told otherwise) and drives it through the runtime.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Backend, FloatArray, ForwardOptions, StepResult } from '../check/backend.js';
import { buildPackage, canonicalGraph } from '../codegen/build.js';
import type { Graph, HostTensor } from '../graph/ir.js';
import type { StepOptions } from '../train/rules.js';
import { buildCudaPackage } from '../codegen/cuda/build.js';
import { loadCuda } from './cuda.js';
import { load, type NativeModel } from './index.js';

export interface CompiledBackendOptions {
  /** folder of the packages (default: <tmp>/tensorkiln-packages) */
  outRoot?: string;
  name?: string;
  maxBatch?: number;
}

export class CompiledBackend implements Backend {
  constructor(
    readonly graph: Graph,
    readonly model: NativeModel,
  ) {}

  loadState(state: Map<string, HostTensor>): void {
    this.model.loadState(state);
  }

  forward(x: FloatArray, batch: number, opts: ForwardOptions): Float32Array {
    this.model.train(opts.train);
    return this.model.forward(x instanceof Float32Array ? x : Float32Array.from(x), batch, opts.seed ?? 0);
  }

  trainStep(x: FloatArray, labels: ArrayLike<number>, batch: number, step: StepOptions, seed = 0): StepResult {
    const r = this.model.trainStepDetailed(x instanceof Float32Array ? x : Float32Array.from(x), Int32Array.from(labels), batch, step, seed);
    return { loss: r.loss, lossCE: r.lossCE, logits: r.logits, grads: this.model.grads() };
  }

  stateDict(): Map<string, HostTensor> {
    return this.model.canonicalState() as Map<string, HostTensor>;
  }
}

function packageName(graph: Graph): string {
  const hash = crypto.createHash('sha256').update(JSON.stringify(canonicalGraph(graph).nodes.map((n) => ({ ...n, source: '' })))).digest('hex').slice(0, 10);
  return `${graph.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${hash}`;
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
