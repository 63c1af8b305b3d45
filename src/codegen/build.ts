// `gen build`: writes generated/<name>/ (C++ kernels, C API, Node binding,
// CMake, typed JS wrapper + d.ts) and compiles it, with a cache keyed by the
// graph, the code generator and templates, the compiler flags and the target ISA.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Graph, HostTensor } from '../graph/ir.js';
import type { Tap } from '../graph/taps.js';
import { saveSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../util/fs.js';
import { addonPath, compilePackage, CXX_FLAGS, readManifest, withPackageLock } from './compile.js';
import { emitDts } from './dts.js';
import { baseView, CODEGEN_VERSION, dropoutView, emitCpu, prefixOf } from './cpu/emit.js';
import { hostIsa, missingFlags } from './isa.js';
import { plan, type PlanOptions } from './cpu/plan.js';
import { render, templatesDigestInput } from './templates.js';

export const DEFAULT_MAX_BATCH = 256;

export interface BuildOptions {
  /** folder holding the packages (default 'generated') */
  outRoot?: string;
  /** package name (default: lowercased model name) */
  name?: string;
  maxBatch?: number;
  backend?: 'cpu';
  /** compile after writing (default true) */
  compile?: boolean;
  /** ignore the cache */
  force?: boolean;
  /** the model's initial state, saved as build/init.safetensors */
  initialState?: Map<string, HostTensor>;
  /** where the model came from, recorded in tensorkiln.json */
  origin?: { file: string; model: string; args?: string };
  /** train steps also compute d loss / d input, and inputGradient() works (src/codegen/cpu/plan.ts PlanOptions) */
  inputGrad?: boolean;
  /** values kept readable after a forward (gen build --taps) */
  taps?: Tap[];
}

export interface BuildResult {
  dir: string;
  name: string;
  prefix: string;
  /** true when nothing was written or compiled */
  cached: boolean;
  key: string;
  /** files written (changed) this time */
  written: string[];
  seconds: number;
}

/** The graph without details that do not change the code (where trace() was called from). */
export function canonicalGraph(g: Graph): Graph {
  // module calls only name values; the taps that name them are part of the key
  const { calls: _calls, ...rest } = g;
  return { ...rest, nodes: g.nodes.map((n) => (n.op === 'input' ? { ...n, source: '' } : n)) };
}

let sourcesDigest: string | undefined;
/** Every source file the generated code depends on: the code generators, the op registry, the training rules. */
function generatorDigest(): string {
  if (sourcesDigest) return sourcesDigest;
  const self = fileURLToPath(import.meta.url);
  const src = path.dirname(path.dirname(self));
  const ext = path.extname(self); // .ts in a checkout, .js in the npm package's dist/
  // everything that decides the emitted code: the generators, the op registry, the SGD rules, augmentation's constants
  const files = ['codegen', 'ops']
    .flatMap((d) => fs.readdirSync(path.join(src, d), { recursive: true, encoding: 'utf8' }).map((f) => path.join(src, d, f)))
    .filter((f) => f.endsWith(ext) && !f.endsWith(`.d${ext}`))
    .sort()
    .concat(path.join(src, `train/rules${ext}`), path.join(src, `data/augment${ext}`));
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(fs.readFileSync(f));
  h.update(templatesDigestInput());
  sourcesDigest = h.digest('hex');
  return sourcesDigest;
}

export function cacheKey(graph: Graph, name: string, maxBatch: number, o: PlanOptions = {}): string {
  const isa = hostIsa();
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify(canonicalGraph(graph)));
  h.update(
    `\0${name}\0${maxBatch}\0${!!o.inputGrad}\0${JSON.stringify(o.taps ?? [])}\0${CODEGEN_VERSION}\0${generatorDigest()}\0${CXX_FLAGS}\0${isa.march}\0${isa.flags.join(' ')}\0${isa.compiler}`,
  );
  return h.digest('hex').slice(0, 32);
}

/** The package's files (relative path → content). */
export function generatePackage(
  graph: Graph,
  name: string,
  maxBatch = DEFAULT_MAX_BATCH,
  origin?: BuildOptions['origin'],
  o: PlanOptions = {},
): Map<string, string> {
  const g = canonicalGraph(graph);
  const p = plan(g, o);
  const prefix = prefixOf(name);
  const cpu = emitCpu(p, name, maxBatch);
  const infoObj = {
    model: g.name,
    name,
    prefix,
    inputShape: g.inputShape,
    classes: p.classes,
    maxBatch,
    state: g.state.map((s) => ({ name: s.name, kind: s.kind, dtype: s.dtype, shape: s.shape })),
    keys: g.keys,
    dropout: dropoutView(g).dropouts,
    ...(p.taps.length ? { taps: p.taps.map(({ name, node, shape }) => ({ name, node, shape })) } : {}),
    ...(o.inputGrad ? { inputGrad: true } : {}),
  };
  const view = { ...baseView(g, name, p.classes), infoJson: JSON.stringify(infoObj, null, 2) };
  const files = new Map<string, string>();
  files.set(`${prefix}.h`, cpu.header);
  files.set(`${prefix}.cpp`, cpu.source);
  files.set('tk_runtime.h', cpu.runtime);
  files.set('binding.cpp', render('node/binding.cpp.hbs', view));
  files.set('CMakeLists.txt', render('cmake/CMakeLists.txt.hbs', view));
  files.set('package.json', render('js/package.json.hbs', view));
  files.set('index.js', render('js/index.js.hbs', view));
  files.set('index.d.ts', emitDts(g, prefix, CODEGEN_VERSION));
  files.set('README.md', render('js/README.md.hbs', view));
  files.set(
    'tensorkiln.json',
    JSON.stringify(
      {
        ...infoObj,
        codegen: CODEGEN_VERSION,
        backend: 'cpu',
        origin: origin ?? null,
        kernels: p.kernels.length,
        plan: p.groups,
        arenaBytesPerSample: p.arenaBytesPerSample,
      },
      null,
      2,
    ) + '\n',
  );
  return files;
}

/** Writes files whose content changed (atomically); returns the changed ones. */
export function writeFiles(dir: string, files: Map<string, string>): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [rel, content] of files) {
    const f = path.join(dir, rel);
    if (fs.existsSync(f) && fs.readFileSync(f, 'utf8') === content) continue;
    writeFileAtomic(f, content);
    written.push(rel);
  }
  return written;
}

export function buildPackage(graph: Graph, o: BuildOptions = {}): BuildResult {
  const t0 = performance.now();
  if (o.backend && o.backend !== 'cpu') throw new Error(`backend '${o.backend}' is not available in this build (cpu only)`);
  const name = o.name ?? graph.name.toLowerCase();
  if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`package name '${name}' must be lowercase letters, digits and _`);
  const maxBatch = o.maxBatch ?? DEFAULT_MAX_BATCH;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 1 << 20)
    throw new Error(`--max-batch must be an integer in [1, 1048576], got ${maxBatch}`);
  const dir = path.resolve(o.outRoot ?? 'generated', packageFolder(name, maxBatch));
  const prefix = prefixOf(name);
  const key = cacheKey(graph, name, maxBatch, { inputGrad: o.inputGrad, taps: o.taps });
  const compile = o.compile ?? true;
  // the cache check inside the lock: a build that waited finds the other's result
  return withPackageLock(dir, () => {
    const m = readManifest(dir);
    if (
      !o.force &&
      compile &&
      m &&
      m.key === key &&
      fs.existsSync(addonPath(dir, prefix)) &&
      missingFlags(m.isa).length === 0 &&
      fs.existsSync(path.join(dir, `${prefix}.cpp`))
    ) {
      saveInitialState(dir, o.initialState);
      return { dir, name, prefix, cached: true, key, written: [], seconds: (performance.now() - t0) / 1000 };
    }
    const files = generatePackage(graph, name, maxBatch, o.origin, { inputGrad: o.inputGrad, taps: o.taps });
    const written = writeFiles(dir, files);
    if (compile) compilePackage(dir, { key, model: graph.name, name, prefix });
    saveInitialState(dir, o.initialState);
    return { dir, name, prefix, cached: false, key, written, seconds: (performance.now() - t0) / 1000 };
  });
}

/**
 * The folder of package `name` built for `maxBatch`: the name itself at the
 * default max batch, else `<name>_b<maxBatch>`, so that packages built for
 * different max batches (e.g. --batch-size 300 and 400) live side by side
 * instead of rebuilding one folder in turn.
 */
export function packageFolder(name: string, maxBatch: number): string {
  return maxBatch === DEFAULT_MAX_BATCH ? name : `${name}_b${maxBatch}`;
}

/** build/init.safetensors: the weights the package's Model starts from (written on every build: init code may change without the graph). */
export function saveInitialState(dir: string, state: Map<string, HostTensor> | undefined): void {
  if (!state) return;
  fs.mkdirSync(path.join(dir, 'build'), { recursive: true });
  saveSafetensors(path.join(dir, 'build', 'init.safetensors'), state);
}
