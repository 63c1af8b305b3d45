// `gen build <model.ts> --model <Name>`: trace, generate generated/<name>/, compile (cached).
import path from 'node:path';
import type { Command } from 'commander';
import { buildCudaPackage, findNvcc } from '../codegen/cuda/build.js';
import { buildPackage, canonicalGraph, DEFAULT_MAX_BATCH, packageFolder, saveInitialState } from '../codegen/build.js';
import { loadModel, parseInputShape } from '../graph/load.js';
import { trace, declaredInput } from '../graph/trace.js';
import { resolveTaps } from '../graph/taps.js';

import { modelFrom, modelOptions, type ModelOptions } from './common.js';
import { intFlag } from './flags.js';
import { example } from './help.js';

interface BuildFlags extends ModelOptions {
  maxBatch?: string;
  out?: string;
  backend?: string;
  name?: string;
  force?: boolean;
  compile?: boolean;
  cudaArch?: string;
  taps?: string;
}

/** 'netresdeep', plus '_nblocks100' when the arguments change the graph and '_in3x64x64' when --input does. */
export async function packageNameFor(file: string, o: ModelOptions & { model: string }, graph: ReturnType<typeof trace>): Promise<string> {
  const base = (o.model === 'default' ? graph.name : o.model).toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const hasArgs = Boolean(o.args && !['', '{}', '[]'].includes(o.args.trim()));
  if (!hasArgs && !o.input) return base;
  const plain = await loadModel(file, o.model);
  const strip = (g: typeof graph) => JSON.stringify(canonicalGraph(g).nodes.map((n) => ({ ...n, source: '' })));
  if (strip(trace(plain, declaredInput(plain))) === strip(graph)) return base;
  let suffix = hasArgs
    ? o
        .args!.toLowerCase()
        .replace(/[^a-z0-9]+/g, '_')
        .replace(/^_+|_+$/g, '')
    : '';
  if (suffix.length > 40) suffix = suffix.slice(0, 40);
  const input = parseInputShape(o.input);
  if (input && input.join() !== declaredInput(plain).join()) suffix += `${suffix ? '_' : ''}in${input.join('x')}`;
  return `${base}_${suffix}`;
}

export function register(program: Command): void {
  modelOptions(
    example(
      program
        .command('build <model.ts>')
        .description('compile a model into generated/<name>/: C++ kernels, C API, Node addon, typed wrapper, README'),
      'gen build model.ts',
      'gen build model.ts --model NetResDeep --args \'{"nBlocks":20}\' --backend auto',
    ),
  )
    .option('--max-batch <N>', `largest batch the compiled model accepts (default ${DEFAULT_MAX_BATCH})`)
    .option('--out <dir>', 'folder of the generated packages', 'generated')
    .option(
      '--backend <name>',
      'cpu | cuda | cuda-emu (CUDA kernels for the CPU emulator) | auto (cpu, plus cuda when nvcc is found)',
      'cpu',
    )
    .option('--cuda-arch <list>', 'CMAKE_CUDA_ARCHITECTURES of the CUDA build', '80;90')
    .option('--name <name>', 'package name (default: lowercased model name, plus a suffix for non-default args)')
    .option('--force', 'rebuild even when the cache says it is up to date')
    .option('--no-compile', 'write the sources only')
    .option('--taps <list>', "values to keep readable after a forward (C API <prefix>_tap), e.g. conv1,resblocks.3 or '#4'")
    .action(async (file: string, o: BuildFlags) => {
      if (!['cpu', 'cuda', 'cuda-emu', 'auto'].includes(o.backend ?? ''))
        throw new Error(`--backend must be cpu, cuda, cuda-emu or auto; got '${o.backend}'`);
      const maxBatch = o.maxBatch === undefined ? undefined : intFlag('max-batch', o.maxBatch, { min: 1, max: 1 << 20 });
      const { model, graph, name: picked } = await modelFrom(file, o);
      const name = o.name ?? (await packageNameFor(file, { ...o, model: picked }, graph));
      const taps =
        o.taps === undefined
          ? undefined
          : resolveTaps(
              graph,
              o.taps.split(',').map((t) => t.trim()),
            );
      const cuda = o.backend === 'cuda' || o.backend === 'cuda-emu' || (o.backend === 'auto' && findNvcc() !== undefined);
      if (o.backend === 'auto' && !cuda) process.stdout.write('no nvcc found: building the CPU package only\n');
      if (cuda) {
        const mb = maxBatch ?? DEFAULT_MAX_BATCH;
        const c = buildCudaPackage(graph, path.resolve(o.out ?? 'generated', packageFolder(name, mb)), name, mb, {
          compile: o.compile,
          emulator: o.backend === 'cuda-emu',
          force: o.force,
          archs: o.cudaArch,
          taps,
        });
        saveInitialState(c.dir, model.stateDict());
        const what = c.cached ? 'up to date (cache hit)' : c.compiled ? 'compiled' : 'written';
        process.stdout.write(`${c.dir}: CUDA package ${what} (${c.written.length} file(s) changed) in ${c.seconds.toFixed(2)} s\n`);
        if (o.backend !== 'auto') return;
      }
      const r = buildPackage(graph, {
        outRoot: o.out,
        name,
        maxBatch,
        backend: 'cpu',
        force: o.force,
        compile: o.compile,
        initialState: model.stateDict(),
        origin: { file, model: picked, args: o.args },
        taps,
      });
      const what = r.cached ? 'up to date (cache hit)' : `built, ${r.written.length} file(s) written`;
      process.stdout.write(`${r.dir}: ${what} in ${r.seconds.toFixed(2)} s\n`);
    });
}
