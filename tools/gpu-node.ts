// The Node path of the CUDA backend on a GPU machine that has no Node and no npm:
// what `gen check --backend cuda` and `gen train --backend cuda` run, prepared here
// and carried in .gpu-node/ (git-ignored, about 32 MiB):
//   node.xz             this machine's node binary (needs glibc >= 2.28 there)
//   gpu-node.mjs        this file bundled with esbuild: golden runner, runtime, training loop, the book's models
//   pkg/<name>/cuda/    CUDA packages with their Node addons, built here with nvcc (sm_90 machine code)
//   pkg.tar.xz          the packages (pkg/<name>/cuda/), xz-compressed to fit the carry; the check script unpacks it
//   golden/<suite>/<case>/  ../shared/golden (book), test/fixtures/golden-{extra,ops,zoo}
//
//   npx tsx tools/gpu-node.ts prepare [--emulator]     here; --emulator builds for the CPU emulator instead,
//                                                       to rehearse `run` on a machine without a GPU;
//                                                       TK_NODE_CASES=<regex over suite/case> prepares a subset
//   bash scripts/gpu-node-check.sh                      there (carry .gpu-node): unpacks node, runs `run`
//
// `run` checks every golden case on the CUDA addon through the same runner and
// tolerances as `gen check`, then trains Net (100 epochs) and NetResDeep (2 epochs)
// on the shipped CIFAR-2 sample through the API's resident trainEpoch, and writes
// $OUT/node-report.md (or ./gpu-node-report.md). TK_NODE_EPOCHS and TK_NODE_LIMIT
// (images per split) shorten the training runs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { train } from '../src/api/workflow.js';
import { caseBuild, formatReport, listGoldenCases, runGoldenCase, type GoldenReport } from '../src/check/golden.js';
import { manualSeed } from '../src/graph/init.js';
import type { Module } from '../src/graph/module.js';
import { trace } from '../src/graph/trace.js';
import { CompiledBackend, packageNameOf } from '../src/runtime/compiled-backend.js';
import { variantSuffix } from '../src/runtime/backend.js';
import { loadCuda } from '../src/runtime/cuda.js';
import { CompiledTrainable } from '../src/runtime/trainable.js';
import { bookModels } from '../models/book.js';
import { zooModels } from '../models/zoo.js';
import { opModels } from '../test/fixtures/op-models.js';

type ModelClass = new (o?: never) => Module;
const MODELS = bookModels as unknown as Record<string, ModelClass>;
/** Each folder of golden cases and the classes its case.json files name. */
const SUITES: Record<string, { dir: string; models: Record<string, ModelClass> }> = {
  book: { dir: '../shared/golden', models: MODELS },
  extra: { dir: 'test/fixtures/golden-extra', models: MODELS },
  ops: { dir: 'test/fixtures/golden-ops', models: opModels as unknown as Record<string, ModelClass> },
  zoo: { dir: 'test/fixtures/golden-zoo', models: zooModels as unknown as Record<string, ModelClass> },
};
const TIMED: [string, number][] = [
  ['Net', 100],
  ['NetResDeep', 2],
];
/** H100 and H200 are sm_90: machine code for it alone keeps the carry small (TK_CUDA_ARCHS to change) */
const ARCHS = process.env.TK_CUDA_ARCHS ?? '90-real';

/** The package a graph runs in: d loss / d input compiled in only where a case checks it. */
const pkgName = (g: ReturnType<typeof trace>, inputGrad: boolean) => packageNameOf(g) + variantSuffix({ inputGrad });

// held in variables so that esbuild leaves the code generator and itself out of the bundle
const codegen = '../src/codegen/cuda/build.js';
const bundler = 'esbuild';

/** This file and everything it imports as one ES module that needs nothing but Node. */
export async function bundle(outfile: string): Promise<void> {
  const esbuild = (await import(bundler)) as typeof import('esbuild');
  await esbuild.build({
    entryPoints: [fileURLToPath(import.meta.url)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    // CommonJS dependencies (pngjs) require Node built-ins
    banner: { js: "import { createRequire as __tkRequire } from 'node:module'; const require = __tkRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

async function prepare(emulator: boolean): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const out = path.join(root, '.gpu-node');
  const { buildCudaPackage } = (await import(codegen)) as typeof import('../src/codegen/cuda/build.js');
  fs.rmSync(out, { recursive: true, force: true });
  const only = new RegExp(process.env.TK_NODE_CASES ?? '');
  const cases = Object.entries(SUITES).flatMap(([suite, s]) =>
    listGoldenCases(path.resolve(root, s.dir))
      .map((dir) => ({ suite, dir, models: s.models }))
      .filter((c) => only.test(`${suite}/${path.basename(c.dir)}`)),
  );
  const graphs = [
    ...(await Promise.all(cases.map((c) => caseBuild(c.dir, { models: c.models })))),
    ...TIMED.map(([m]) => ({ graph: trace(new MODELS[m]()), inputGrad: false })),
  ];
  const built = new Set<string>();
  for (const { graph: g, inputGrad: ig } of graphs) {
    const name = pkgName(g, ig);
    if (built.has(name)) continue;
    built.add(name);
    const r = buildCudaPackage(g, path.join(out, 'pkg', name), name, 256, { emulator, archs: emulator ? undefined : ARCHS, inputGrad: ig });
    // the carry is size-limited: keep the addon, drop the static library and CMake's files
    for (const f of fs.readdirSync(path.join(r.dir, 'build')))
      if (f !== 'Release' && f !== 'manifest.json') fs.rmSync(path.join(r.dir, 'build', f), { recursive: true, force: true });
    console.log(`built ${r.dir} in ${r.seconds.toFixed(1)} s`);
  }
  for (const c of cases) fs.cpSync(c.dir, path.join(out, 'golden', c.suite, path.basename(c.dir)), { recursive: true });
  await bundle(path.join(out, 'gpu-node.mjs'));
  const tar = spawnSync('sh', ['-c', `tar -C "${out}" -cf - pkg | xz -T2 -6 > "${path.join(out, 'pkg.tar.xz')}"`]);
  if (tar.status !== 0) throw new Error(`tar of ${out}/pkg failed: ${tar.stderr}`);
  fs.rmSync(path.join(out, 'pkg'), { recursive: true, force: true });
  const xz = spawnSync('sh', ['-c', `xz -T2 -6 -c "${process.execPath}" > "${path.join(out, 'node.xz')}"`]);
  if (xz.status !== 0) throw new Error(`xz of ${process.execPath} failed: ${xz.stderr}`);
  const du = spawnSync('du', ['-sh', out], { encoding: 'utf8' }).stdout.trim();
  console.log(`${du}: ${built.size} packages${emulator ? ' (CPU emulator)' : ''}, ${cases.length} golden cases, gpu-node.mjs, node.xz`);
}

async function run(outDir: string | undefined): Promise<void> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // prepare --emulator builds into cuda-emu/
  const pkg = (g: ReturnType<typeof trace>, inputGrad = false) => {
    const [gpu, emu] = ['cuda', 'cuda-emu'].map((d) => path.join(here, 'pkg', pkgName(g, inputGrad), d));
    return !fs.existsSync(gpu) && fs.existsSync(emu) ? emu : gpu;
  };
  const lines: string[] = [
    '# tensorkiln CUDA backend from Node',
    '',
    `- node ${process.version}, ${os.hostname()}, ${new Date().toISOString()}`,
  ];
  const started = performance.now();
  let device = '';
  const reports: GoldenReport[] = [];
  const cases = Object.entries(SUITES).flatMap(([suite, s]) =>
    listGoldenCases(path.join(here, 'golden', suite)).map((dir) => ({ dir, models: s.models })),
  );
  for (const { dir, models } of cases) {
    try {
      const r = await runGoldenCase(
        dir,
        async (g, needs) => {
          const m = await loadCuda(pkg(g, !!needs?.inputGrad));
          device ||= m.device;
          return new CompiledBackend(g, m, !!needs?.inputGrad);
        },
        { models },
      );
      reports.push(r);
      console.log(formatReport(r));
    } catch (e) {
      lines.push(`- ${path.basename(dir)}: ERROR ${(e as Error).message}`);
      console.log(`${path.basename(dir)}: ERROR ${(e as Error).message}`);
    }
  }
  lines.push(
    `- device: ${device || '(none loaded)'}`,
    '',
    '## gen check --backend cuda (golden cases)',
    '',
    '| case | result | tensors | failed | worst ratio |',
    '| --- | --- | --- | --- | --- |',
  );
  for (const r of reports) {
    const worst = r.checks.reduce((a, c) => (c.ratio > a.ratio ? c : a), r.checks[0]);
    lines.push(
      `| ${r.caseName} | ${r.pass ? 'PASS' : '**FAIL**'} | ${r.checks.length} | ${r.checks.filter((c) => !c.pass).length} | ${worst ? `${worst.name} ${worst.ratio.toExponential(2)}` : ''} |`,
    );
  }
  lines.push(
    '',
    '## gen train --backend cuda (shipped CIFAR-2 sample, batch 64, lr 1e-2, seed 0)',
    '',
    '| model | epochs | images | train s | img/s | loss first → last | train acc | val acc |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  // TK_NODE_EPOCHS / TK_NODE_LIMIT shorten the runs (a rehearsal on the CPU emulator)
  const limit = Number(process.env.TK_NODE_LIMIT ?? 0);
  const cut = (s: ImageData['train']) =>
    limit > 0 && limit < s.n ? { ...s, n: limit, x: s.x.subarray(0, limit * 3072), y: s.y.subarray(0, limit) } : s;
  let data: ImageData | undefined;
  for (const [name, fullEpochs] of TIMED) {
    const epochs = Number(process.env.TK_NODE_EPOCHS ?? fullEpochs);
    try {
      if (!data) {
        const full = cifar2Data(path.resolve('data/cifar2'));
        data = { ...full, train: cut(full.train), val: cut(full.val) };
      }
      manualSeed(0);
      const module = new MODELS[name]();
      const graph = trace(module);
      const native = await loadCuda(pkg(graph));
      native.loadStateDict(module.stateDict());
      const r = await train(new CompiledTrainable(graph, native), data, { epochs, batchSize: 64, lr: 1e-2, seed: 0 });
      const ips = (epochs * data.train.n) / r.seconds;
      lines.push(
        `| ${name} | ${epochs} | ${data.train.n} | ${r.seconds.toFixed(2)} | ${Math.round(ips)} | ${r.losses[0].toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)} | ${r.trainAccuracy.toFixed(3)} | ${r.valAccuracy.toFixed(3)} |`,
      );
    } catch (e) {
      lines.push(`| ${name} | ERROR: ${(e as Error).message} |`);
    }
  }
  lines.push('', `Total ${((performance.now() - started) / 1000).toFixed(1)} s.`, '');
  if (outDir) fs.mkdirSync(outDir, { recursive: true });
  const file = outDir ? path.join(outDir, 'node-report.md') : 'gpu-node-report.md';
  fs.writeFileSync(file, lines.join('\n'));
  console.log(lines.join('\n'));
  if (reports.some((r) => !r.pass) || reports.length === 0) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [verb, arg] = process.argv.slice(2);
  if (verb === 'prepare') await prepare(arg === '--emulator');
  else if (verb === 'run') await run(arg ?? process.env.OUT);
  else {
    console.error('usage: npx tsx tools/gpu-node.ts prepare [--emulator] | node .gpu-node/gpu-node.mjs run [outDir]');
    process.exitCode = 2;
  }
}
