// Opens a model for training or inference on a backend: the TypeScript
// interpreter, or a compiled package (CPU, CUDA) built on demand.
import type { Module } from '../graph/module.js';
import { declaredInput, trace } from '../graph/trace.js';
import { loadModel, parseArgs, parseInputShape } from '../graph/load.js';
import type { Graph } from '../graph/ir.js';
import { InterpreterModel } from '../train/interp-model.js';
import type { TrainableModel } from '../train/model.js';

export type BackendName = 'interp' | 'cpu' | 'cuda';

export interface OpenOptions {
  backend?: BackendName;
  /** largest batch one call will take (compiled backends size their arena by it) */
  maxBatch?: number;
  /** base seed of dropout masks */
  seed?: number;
  /** per-sample input shape; default the model's declared one */
  input?: number[];
  /** where compiled packages go (default generated/) */
  outDir?: string;
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

const openers: Record<string, Opener> = {
  interp: async (module, graph, o) => new InterpreterModel(graph, module.stateDict(), o.seed ?? 0, o.maxBatch ?? 1024),
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
  return openModule(module, { ...o, input: o.input ?? parseInputShape(src.input) });
}
