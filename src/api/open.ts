// Opens a model for training or inference on a backend: the TypeScript
// interpreter, or a compiled package (CPU, CUDA, CUDA on the CPU emulator) built on demand.
import fs from 'node:fs';
import path from 'node:path';
import type { Module } from '../graph/module.js';
import { declaredInput, trace } from '../graph/trace.js';
import { loadModelExport, parseArgs, parseInputShape } from '../graph/load.js';
import type { Graph } from '../graph/ir.js';
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
  /** the exported class or instance (default: the only model the file exports) */
  model?: string;
  /** constructor arguments as JSON (the CLI's --args) */
  args?: string;
  /** the CLI's --input C,H,W */
  input?: string;
}

type Opener = (module: Module, graph: Graph, o: OpenOptions) => Promise<TrainableModel>;

/** generated/<name>/ (cuda/, cuda-emu/ for those backends), built when missing or stale, starting from the module's weights. */
const compiledOpener =
  (kind: 'cpu' | 'cuda' | 'cuda-emu'): Opener =>
  async (module, graph, o) => {
    const [{ openCpuPackage, openCudaPackage }, { CompiledTrainable }] = await Promise.all([
      import('../runtime/backend.js'),
      import('../runtime/trainable.js'),
    ]);
    const { packageNameOf } = await import('../runtime/compiled-backend.js');
    const { DEFAULT_MAX_BATCH, packageFolder } = await import('../codegen/build.js');
    const outRoot = o.outDir ?? 'generated';
    const name = o.name ?? packageNameOf(graph);
    const common = { outRoot, name, maxBatch: o.maxBatch, seed: o.seed ?? 0, log: o.log };
    const cuda = { emulator: kind === 'cuda-emu', device: o.device };
    const native =
      kind === 'cpu'
        ? await openCpuPackage(graph, {
            ...common,
            origin: o.origin ?? recordedOrigin(path.resolve(outRoot, packageFolder(name, o.maxBatch ?? DEFAULT_MAX_BATCH))),
          })
        : await openCudaPackage(graph, { ...common, ...cuda });
    native.loadStateDict(module.stateDict());
    // a look inside builds a package of its own (under the OS temp dir), so the training kernels stay as they are
    const probe = { maxBatch: native.maxBatch, seed: o.seed ?? 0, log: o.log };
    return new CompiledTrainable(graph, native, (p) =>
      kind === 'cpu' ? openCpuPackage(graph, { ...probe, ...p }) : openCudaPackage(graph, { ...probe, ...cuda, ...p }),
    );
  };

const openers: Record<BackendName, Opener> = {
  interp: async (module, graph, o) => new InterpreterModel(graph, module.stateDict(), o.seed ?? 0, o.maxBatch ?? 1024),
  cpu: compiledOpener('cpu'),
  cuda: compiledOpener('cuda'),
  'cuda-emu': compiledOpener('cuda-emu'),
};

/** Traces `module` and opens it on a backend, starting from the module's current weights. */
export async function openModule(module: Module, o: OpenOptions = {}): Promise<TrainableModel> {
  const backend = o.backend ?? 'cpu';
  const open = openers[backend] as Opener | undefined;
  if (!open) throw new Error(`backend '${backend}' is not available; available: ${Object.keys(openers).join(', ')}`);
  return open(module, trace(module, o.input ?? declaredInput(module)), o);
}

/** Loads a model class from a file and opens it, as the CLI does. */
export async function openModel(src: ModelSource, o: OpenOptions = {}): Promise<TrainableModel> {
  const { model: module, name: model } = await loadModelExport(src.file, src.model, parseArgs(src.args));
  const input = o.input ?? parseInputShape(src.input);
  // The same package name as `gen build`, so the CLI reuses generated/<name>/.
  const { packageNameFor } = await import('../cli/build.js');
  const name =
    o.name ?? (await packageNameFor(src.file, { model, args: src.args, input: src.input }, trace(module, input ?? declaredInput(module))));
  return openModule(module, { ...o, input, name, origin: o.origin ?? { file: src.file, model, args: src.args } });
}

/** The origin a package already records, so rebuilding it from the API leaves its files unchanged. */
function recordedOrigin(dir: string): OpenOptions['origin'] {
  try {
    return (
      (JSON.parse(fs.readFileSync(path.join(dir, 'tensorkiln.json'), 'utf8')) as { origin?: OpenOptions['origin'] }).origin ?? undefined
    );
  } catch {
    return undefined;
  }
}
