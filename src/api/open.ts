// Opens a model for training or inference on a backend: the TypeScript
// interpreter, or a compiled package (CPU, CUDA, CUDA on the CPU emulator) built on demand.
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../graph/module.js';
import { declaredInput, trace } from '../graph/trace.js';
import { loadModel, parseArgs, parseInputShape } from '../graph/load.js';
import type { Graph } from '../graph/ir.js';
import { graphHash } from '../graph/hash.js';
import { InterpreterModel } from '../train/interp-model.js';
import type { TrainableModel } from '../train/model.js';

/** cuda-emu: the CUDA kernels on the CPU emulator (tests without a GPU; slow). */
export type BackendName = 'interp' | 'cpu' | 'cuda' | 'cuda-emu';

export interface OpenOptions {
  backend?: BackendName;
  /** largest batch one call will take (compiled backends size their arena by it) */
  maxBatch?: number;
  /** base seed of dropout masks */
  seed?: number;
  /** CUDA device index (default 0) */
  device?: number;
  /** per-sample input shape; default the model's declared one */
  input?: number[];
  /** where compiled packages go (default generated/) */
  outDir?: string;
  /** package name (default: lowercased class name and a graph hash) */
  name?: string;
  /** where the model came from, recorded in the package (default: what the package already records) */
  origin?: { file: string; model: string; args?: string };
  log?: (line: string) => void;
}

export interface ModelSource {
  file: string;
  model: string;
  /** constructor arguments as JSON (the CLI's --args) */
  args?: string;
  /** the CLI's --input C,H,W */
  input?: string;
}

type Opener = (module: Module, graph: Graph, o: OpenOptions) => Promise<TrainableModel>;

const packageName = (graph: Graph, o: OpenOptions) => o.name ?? `${graph.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${graphHash(graph).slice(0, 8)}`;

/** generated/<name>/cuda (or cuda-emu), built when missing or stale; state and data then live on the device. */
const cudaOpener =
  (emulator: boolean): Opener =>
  async (module, graph, o) => {
    const [{ buildCudaPackage }, { loadCuda }, { CompiledTrainable }] = await Promise.all([
      import('../codegen/cuda/build.js'),
      import('../runtime/cuda.js'),
      import('../runtime/trainable.js'),
    ]);
    const name = packageName(graph, o);
    const r = buildCudaPackage(graph, path.resolve(o.outDir ?? 'generated', name), name, o.maxBatch ?? 256, { emulator });
    if (!r.cached) o.log?.(`built ${r.dir} in ${r.seconds.toFixed(1)} s`);
    const native = await loadCuda(r.dir, { device: o.device, seed: o.seed ?? 0 });
    native.loadStateDict(module.stateDict());
    return new CompiledTrainable(graph, native);
  };

const openers: Record<string, Opener> = {
  interp: async (module, graph, o) => new InterpreterModel(graph, module.stateDict(), o.seed ?? 0, o.maxBatch ?? 1024),
  cpu: async (module, graph, o) => {
    const [{ buildPackage }, { load }, { CompiledTrainable }] = await Promise.all([
      import('../codegen/build.js'),
      import('../runtime/index.js'),
      import('../runtime/trainable.js'),
    ]);
    const maxBatch = o.maxBatch ?? 256;
    const name = packageName(graph, o);
    const origin = o.origin ?? recordedOrigin(path.resolve(o.outDir ?? 'generated', name));
    const r = buildPackage(graph, { outRoot: o.outDir ?? 'generated', name, maxBatch, origin });
    if (!r.cached) o.log?.(`built ${r.dir} in ${r.seconds.toFixed(1)} s`);
    const native = await load(r.dir, { maxBatch, seed: o.seed ?? 0, init: false });
    native.loadStateDict(module.stateDict());
    return new CompiledTrainable(graph, native);
  },
  cuda: cudaOpener(false),
  'cuda-emu': cudaOpener(true),
};

/** Compiled backends register themselves here (see src/runtime). */
export function registerOpener(name: BackendName, open: Opener): void {
  openers[name] = open;
}

/** Traces `module` and opens it on a backend, starting from the module's current weights. */
export async function openModule(module: Module, o: OpenOptions = {}): Promise<TrainableModel> {
  const backend = o.backend ?? 'cpu';
  const open = openers[backend];
  if (!open) throw new Error(`backend '${backend}' is not available; available: ${Object.keys(openers).join(', ')}`);
  return open(module, trace(module, o.input ?? declaredInput(module)), o);
}

/** Loads a model class from a file and opens it, as the CLI does. */
export async function openModel(src: ModelSource, o: OpenOptions = {}): Promise<TrainableModel> {
  const module = await loadModel(src.file, src.model, parseArgs(src.args));
  const input = o.input ?? parseInputShape(src.input);
  // The same package name as `gen build`, so the CLI reuses generated/<name>/.
  const { packageNameFor } = await import('../cli/build.js');
  const name = o.name ?? (await packageNameFor(src.file, { model: src.model, args: src.args, input: src.input }, trace(module, input ?? declaredInput(module))));
  return openModule(module, { ...o, input, name, origin: o.origin ?? { file: src.file, model: src.model, args: src.args } });
}

/** The origin a package already records, so rebuilding it from the API leaves its files unchanged. */
function recordedOrigin(dir: string): OpenOptions['origin'] {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'tensorkiln.json'), 'utf8')) as { origin?: OpenOptions['origin'] }).origin ?? undefined;
  } catch {
    return undefined;
  }
}
