// The compiled CPU backend behind src/check's Backend interface: builds the
// graph into a cached package (generated/ for the book's models, else a
// per-graph folder under the OS temp dir) and drives it through the runtime.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import type { Backend, FloatArray, ForwardOptions, StepResult } from '../check/backend.js';
import { buildPackage, canonicalGraph } from '../codegen/build.js';
import type { Graph, HostTensor } from '../graph/ir.js';
import type { StepOptions } from '../train/rules.js';
import { load, type CompiledModel } from './index.js';

export interface CompiledBackendOptions {
  /** folder of the packages (default: <tmp>/tensorkiln-packages) */
  outRoot?: string;
  name?: string;
  maxBatch?: number;
}

export class CompiledBackend implements Backend {
  constructor(
    readonly graph: Graph,
    readonly model: CompiledModel,
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

/** Builds (cached) and loads `graph` as a compiled CPU model. */
export async function compiledBackend(graph: Graph, o: CompiledBackendOptions = {}): Promise<CompiledBackend> {
  const hash = crypto.createHash('sha256').update(JSON.stringify(canonicalGraph(graph).nodes.map((n) => ({ ...n, source: '' })))).digest('hex').slice(0, 10);
  const name = o.name ?? `${graph.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${hash}`;
  const r = buildPackage(graph, { outRoot: o.outRoot ?? path.join(os.tmpdir(), 'tensorkiln-packages'), name, maxBatch: o.maxBatch ?? 256 });
  const model = await load(r.dir, { maxBatch: o.maxBatch ?? 256, init: false });
  return new CompiledBackend(graph, model);
}
