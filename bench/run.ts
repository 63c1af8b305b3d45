// npm run bench [-- --json out.json] [--models Net,ResNet20] [--reps 7] [--threads 2] [--before <checkout>]
//                [--no-torch] [--no-interp] [--no-latency]
//
// Compiled CPU kernels of the book's models (models/book.ts) and the zoo
// (models/zoo.ts) against PyTorch 1.13 on 1 and 2 threads and the reference
// interpreter, on the same real CIFAR-2 batches (airplanes and birds of
// data_batch_1.bin, normalised per channel; a model with another input shape
// gets a centre crop of the first channels): training img/s at batch 64, eval
// img/s at batch 256, batch-1 latency, plus gen build time cold and warm.
// Every figure is the median of repeated timings; ratios are compiled / other.
//
// --before <checkout>: the same models built by another checkout's generator
// (e.g. a clone of main), timed in this run, alternating with this one's, so a
// change is measured against its base under the same load.
//
// The ISA: builds use -march=native, or TK_MARCH from the environment
// (TK_MARCH=x86-64-v3 measures the AVX2 kernels on an AVX-512 machine, and then
// PyTorch's oneDNN and ATen are capped at AVX2 as well); the output names the
// vectors the kernels used.
//
// Roofline: achieved FLOP/s (2 per multiply-add of the convolutions and linear
// layers; a train step counts the forward, the weight gradient and, where the
// input needs one, the input gradient) against two peaks: nominal = threads x
// 2 FMA pipes x lanes x 2 FLOPs x the clock /proc/cpuinfo reports (CPUs that
// split 512-bit FMAs, such as AMD Zen 4, have half of it), and measured =
// bench/fma_peak.cpp, chains of FMAs on the same vectors and threads, run just
// before the models (its clock is the real one, turbo or loaded). % peak is of
// the measured one.
// The threads of one step meet at barriers: on a machine where other
// processes hold the cores, 2 threads can be much slower than 1 (--threads 1).
// The output says how much CPU other processes took during the run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPackage } from '../src/codegen/build.js';
import { MARCH, kernelSimd } from '../src/codegen/isa.js';
import type { Graph, HostTensor } from '../src/graph/ir.js';
import { numel } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { load } from '../src/runtime/index.js';
import { bookModels } from '../models/book.js';
import { zooModels } from '../models/zoo.js';
import { CIFAR_SHAPE, cifar2, readCifarBatch } from '../src/data/cifar.js';
import { channelStats, normalize } from '../src/data/transforms.js';
import { intFlag } from '../src/cli/flags.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (k: string) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const flag = (k: string) => argv.includes(`--${k}`);
const allModels = { ...bookModels, ...zooModels } as Record<string, new () => import('../src/graph/module.js').Module>;
const defaultModels = ['Net', 'NetWidth', 'NetBatchNorm', 'NetResDeep', ...Object.keys(zooModels)];
const models = opt('models')?.split(',') ?? defaultModels;
for (const m of models) if (!allModels[m]) throw new Error(`--models: no model ${m} in models/book.ts or models/zoo.ts`);
const reps = intFlag('reps', opt('reps') ?? '7', { min: 1 });
const before = opt('before');
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

// ---------------------------------------------------------------- data: CIFAR-2 from data_batch_1.bin
// The project's own reader and normalisation (src/data), first n airplanes/birds.
function cifar2Batch(n: number): { x: Float32Array; y: Int32Array } {
  const raw = cifar2(readCifarBatch(path.resolve(root, '../shared/data/cifar10/data_batch_1.bin')));
  const k = Math.min(n, raw.labels.length);
  const images = raw.images.subarray(0, k * 3072);
  const stats = channelStats(images, CIFAR_SHAPE);
  return { x: normalize(images, stats, CIFAR_SHAPE), y: Int32Array.from(raw.labels.subarray(0, k)) };
}

/** The images as [C, H, W]: channel c is CIFAR's c mod 3, centre-cropped (3x32x32 is the images themselves). */
function reshapeImages(x: Float32Array, n: number, [C, H, W]: number[]): Float32Array {
  if (C === 3 && H === 32 && W === 32) return x;
  if (H > 32 || W > 32) throw new Error(`bench: input ${C}x${H}x${W} is larger than CIFAR's 32x32`);
  const out = new Float32Array(n * C * H * W);
  const t = (32 - H) >> 1;
  const l = (32 - W) >> 1;
  for (let i = 0; i < n; i++)
    for (let c = 0; c < C; c++)
      for (let h = 0; h < H; h++)
        for (let w = 0; w < W; w++) out[((i * C + c) * H + h) * W + w] = x[((i * 3 + (c % 3)) * 32 + h + t) * 32 + w + l];
  return out;
}

// ---------------------------------------------------------------- FLOPs per image
function macs(g: Graph): { fwd: number; train: number } {
  let fwd = 0;
  let bwd = 0;
  const rg = new Set<number>();
  for (const n of g.nodes) {
    const needs = n.inputs.some((i) => rg.has(i));
    if (n.op !== 'input' && (n.params.length || needs)) rg.add(n.id);
    let m = 0;
    if (n.op === 'conv2d') m = (numel(n.shape) * n.attrs.inC * n.attrs.kh * n.attrs.kw) / n.attrs.groups;
    if (n.op === 'linear') m = n.attrs.inF * n.attrs.outF;
    fwd += m;
    bwd += m + (needs ? m : 0);
  }
  return { fwd, train: fwd + bwd };
}

/** Nominal peak (see the header) and the measured one (bench/fma_peak.cpp, built with the kernels' -march). */
function peaks(threads: number): { nominal: number; measured: number; ghz: number; lanes: number } {
  const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const ghz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? 2500) / 1000;
  const { lanes } = kernelSimd();
  const exe = path.join(os.tmpdir(), `tk-bench-fma-${MARCH}`);
  const cc = spawnSync('g++', ['-O3', `-march=${MARCH}`, '-fopenmp', path.join(root, 'bench/fma_peak.cpp'), '-o', exe], {
    encoding: 'utf8',
  });
  if (cc.status !== 0) throw new Error(`bench: could not build bench/fma_peak.cpp: ${cc.stderr}`);
  const out = spawnSync(exe, [String(threads)], { encoding: 'utf8' })
    .stdout.trim()
    .split(' ');
  return { nominal: threads * 2 * lanes * 2 * ghz * 1e9, measured: Number(out[0]) * 1e9, ghz, lanes };
}

/** CPU seconds of all processes so far (/proc/stat), to tell what others took during the run. */
function cpuSeconds(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const hz = 100;
  const idle = f[3] + f[4];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / hz, total: total / hz };
}

/** CPU seconds of this process and the children it waited for (/proc/self/stat: utime, stime, cutime, cstime). */
function selfSeconds(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

interface Timing {
  train: number;
  eval: number;
  latencyMs?: number;
}

interface Row extends Timing {
  model: string;
  buildColdS: number;
  buildWarmS: number;
  before?: Timing;
  interpTrain?: number;
  interpEval?: number;
  torch1?: Timing;
  torch2?: Timing;
  trainGflops: number;
  evalGflops: number;
}

type Loaded = Awaited<ReturnType<typeof load>>;

/** One model's timings: rep r of training (16 steps at batch 64) and eval (8 batches of 256) for each package, interleaved. */
async function timeAll(ms: Loaded[], x: Float32Array, y: Int32Array, n: number, sample: number): Promise<Timing[]> {
  const nb = Math.floor(n / 64);
  const eb = Math.floor(n / 256);
  const step = (m: Loaded, i: number) =>
    m.trainStep(x.subarray((i % nb) * 64 * sample, ((i % nb) + 1) * 64 * sample), y.subarray((i % nb) * 64, ((i % nb) + 1) * 64), 64, {
      lr: 1e-2,
    });
  const train: number[][] = ms.map(() => []);
  const ev: number[][] = ms.map(() => []);
  for (const m of ms) {
    m.train();
    for (let i = 0; i < 5; i++) step(m, i);
  }
  for (let r = 0; r < reps; r++)
    for (const [k, m] of ms.entries()) {
      m.train();
      const t = performance.now();
      for (let i = 0; i < 16; i++) step(m, i);
      train[k].push((16 * 64) / ((performance.now() - t) / 1000));
      m.eval();
      const t1 = performance.now();
      for (let i = 0; i < 8; i++) m.forward(x.subarray((i % eb) * 256 * sample, ((i % eb) + 1) * 256 * sample), 256);
      ev[k].push((8 * 256) / ((performance.now() - t1) / 1000));
    }
  return ms.map((m, k) => {
    const res: Timing = { train: median(train[k]), eval: median(ev[k]) };
    if (!flag('no-latency')) {
      m.eval();
      const lat: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const t = performance.now();
        m.forward(x.subarray((i % n) * sample, ((i % n) + 1) * sample), 1);
        lat.push(performance.now() - t);
      }
      res.latencyMs = median(lat);
    }
    return res;
  });
}

/**
 * PyTorch's vector ISA held to ours: when our kernels are built for AVX2 (TK_MARCH=x86-64-v3 on an
 * AVX-512 machine), oneDNN (PyTorch's convolutions) and ATen are capped at AVX2 too, as on an AVX2-only machine.
 */
let isaEnv: Record<string, string> | undefined;
function torchIsaEnv(): Record<string, string> {
  // kernelSimd asks gcc: once
  isaEnv ??= kernelSimd().lanes === 16 ? {} : { ONEDNN_MAX_CPU_ISA: 'AVX2', DNNL_MAX_CPU_ISA: 'AVX2', ATEN_CPU_CAPABILITY: 'avx2' };
  return isaEnv;
}

/** How the header names PyTorch's ISA cap ('' when uncapped). */
function torchIsaNote(): string {
  const e = Object.entries(torchIsaEnv());
  return e.length ? `, capped at AVX2: ${e.map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
}

/** PyTorch 1.13 on the same batches: one JSON line per model (bench/torch_bench.py). */
function torchTimings(specs: { model: string; file: string; shape: number[] }[], n: number, threads: number): Map<string, Timing> {
  const spec = path.join(os.tmpdir(), 'tk-bench-torch.json');
  fs.writeFileSync(spec, JSON.stringify(specs));
  const r = spawnSync('/usr/bin/python3', [path.join(root, 'bench/torch_bench.py'), spec, String(n), String(reps), String(threads)], {
    encoding: 'utf8',
    env: { ...process.env, ...torchIsaEnv() },
  });
  if (r.status !== 0) process.stderr.write(`PyTorch comparator (${threads} threads) failed:\n${r.stderr}\n`);
  const out = new Map<string, Timing>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const t = JSON.parse(line) as { model: string; train: number; eval: number; latency_ms: number };
    out.set(t.model, { train: t.train, eval: t.eval, latencyMs: t.latency_ms });
  }
  return out;
}

function buildBefore(checkout: string, outRoot: string): Record<string, string> {
  const tsx = path.join(root, 'node_modules/.bin/tsx');
  const r = spawnSync(tsx, [path.join(root, 'bench/build-in.ts'), path.resolve(checkout), outRoot, models.join(',')], {
    cwd: path.resolve(checkout),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`bench --before: building with ${checkout} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
}

async function main(): Promise<void> {
  const { x, y } = cifar2Batch(2048);
  const n = y.length;
  const threads = intFlag('threads', opt('threads') ?? String(Math.min(2, os.cpus().length)), { min: 1, max: 64 });
  const out = path.join(os.tmpdir(), 'tk-bench');
  const simd = kernelSimd();
  const cpu0 = cpuSeconds();
  const self0 = selfSeconds();
  const t0 = performance.now();
  const peak = peaks(threads);
  const beforeDirs = before ? buildBefore(before, path.join(out, 'before')) : {};
  const rows: Row[] = [];
  const torchSpecs: { model: string; file: string; shape: number[] }[] = [];
  for (const name of models) {
    const model = new allModels[name]();
    const graph = trace(model);
    const shape = graph.inputShape;
    const sample = numel(shape);
    const xs = reshapeImages(x, n, shape);
    const file = path.join(os.tmpdir(), `tk-bench-data-${shape.join('x')}.f32`);
    if (!fs.existsSync(file) || fs.statSync(file).size !== (xs.length + n) * 4) {
      const both = new Float32Array(xs.length + n);
      both.set(xs);
      both.set(Float32Array.from(y), xs.length);
      fs.writeFileSync(file, Buffer.from(both.buffer));
    }
    torchSpecs.push({ model: name, file, shape });
    const state = model.stateDict() as Map<string, HostTensor>;
    fs.rmSync(path.join(out, name.toLowerCase()), { recursive: true, force: true });
    const cold = buildPackage(graph, { outRoot: out, name: name.toLowerCase(), initialState: state });
    const warm = buildPackage(graph, { outRoot: out, name: name.toLowerCase(), initialState: state });
    const pkgs = [await load(cold.dir, { maxBatch: 256 })];
    if (before) pkgs.push(await load(beforeDirs[name], { maxBatch: 256 }));
    for (const m of pkgs) m.numThreads = threads;
    const [now, was] = await timeAll(pkgs, xs, y, n, sample);
    const f = macs(graph);
    const row: Row = {
      model: name,
      ...now,
      before: was,
      buildColdS: cold.seconds,
      buildWarmS: warm.seconds,
      trainGflops: (now.train * 2 * f.train) / 1e9,
      evalGflops: (now.eval * 2 * f.fwd) / 1e9,
    };
    if (!flag('no-interp')) {
      const it = new Interpreter(graph, state);
      const b = 8;
      const t = performance.now();
      it.trainStep(xs.subarray(0, b * sample), y.subarray(0, b), b, { lr: 1e-2 });
      row.interpTrain = b / ((performance.now() - t) / 1000);
      const t1 = performance.now();
      it.forward(xs.subarray(0, b * sample), b, { train: false });
      row.interpEval = b / ((performance.now() - t1) / 1000);
    }
    rows.push(row);
    process.stderr.write(`${name}: done\n`);
  }
  if (!flag('no-torch') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
    for (const [k, th] of [1, 2].entries()) {
      const t = torchTimings(torchSpecs, n, th);
      for (const r of rows) r[k === 0 ? 'torch1' : 'torch2'] = t.get(r.model);
    }
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds();
  // others: all busy CPU time minus this process's and its children's (compilers, PyTorch)
  const othersCores = (cpu1.busy - cpu0.busy - (selfSeconds() - self0)) / wall;
  const fmt = (v: number | undefined, d = 0) => (v === undefined ? '-' : v.toFixed(d));
  const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}x` : '-');
  const pct = (g: number) => `${((100 * g * 1e9) / peak.measured).toFixed(0)}%`;
  const lines = [
    `compiled CPU (${threads} threads, ${simd.name}: ${simd.lanes}-lane vectors${simd.fma ? ' + FMA' : ''}, -march=${MARCH}) vs PyTorch 1.13 (1 and 2 threads${torchIsaNote()})` +
      `${before ? ` vs ${before} (before)` : ''}; CIFAR-2 batches; medians of ${reps} runs`,
    `peak: measured ${(peak.measured / 1e9).toFixed(0)} GFLOP/s (bench/fma_peak.cpp, ${threads} threads); nominal ${(peak.nominal / 1e9).toFixed(0)} GFLOP/s ` +
      `(${threads} cores x 2 FMA pipes x ${peak.lanes} lanes x 2 x ${peak.ghz.toFixed(2)} GHz from /proc/cpuinfo); % peak is of the measured`,
    '',
    '| model | train img/s (b64) | before | vs before | vs torch 1t | vs torch 2t | eval img/s (b256) | before | vs before | vs torch 1t | vs torch 2t | train GFLOP/s (% peak) | eval GFLOP/s (% peak) | latency b1 ms (torch 1t) | build cold / warm s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.model} | ${fmt(r.train)} | ${fmt(r.before?.train)} | ${ratio(r.train, r.before?.train)} | ${ratio(r.train, r.torch1?.train)} | ${ratio(r.train, r.torch2?.train)} ` +
        `| ${fmt(r.eval)} | ${fmt(r.before?.eval)} | ${ratio(r.eval, r.before?.eval)} | ${ratio(r.eval, r.torch1?.eval)} | ${ratio(r.eval, r.torch2?.eval)} ` +
        `| ${r.trainGflops.toFixed(1)} (${pct(r.trainGflops)}) | ${r.evalGflops.toFixed(1)} (${pct(r.evalGflops)}) ` +
        `| ${fmt(r.latencyMs, 3)} (${fmt(r.torch1?.latencyMs, 3)}) | ${r.buildColdS.toFixed(2)} / ${r.buildWarmS.toFixed(3)} |`,
    ),
    '',
    `PyTorch 1 thread: ${rows.map((r) => `${r.model} train ${fmt(r.torch1?.train)} eval ${fmt(r.torch1?.eval)}`).join('; ')}`,
    `PyTorch 2 threads: ${rows.map((r) => `${r.model} train ${fmt(r.torch2?.train)} eval ${fmt(r.torch2?.eval)}`).join('; ')}`,
    `interpreter (1 step, batch 8): ${rows.map((r) => `${r.model} train ${fmt(r.interpTrain, 1)} eval ${fmt(r.interpEval, 1)}`).join('; ')}`,
    `load: other processes used ${othersCores.toFixed(2)} of ${os.cpus().length} cores on average over the ${wall.toFixed(0)} s run ` +
      `(this bench, its compilers and PyTorch excluded); load average at the end ${os
        .loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  const json = opt('json');
  if (json)
    fs.writeFileSync(json, JSON.stringify({ threads, simd, march: MARCH, peak, rows, othersCores, loadavg: os.loadavg() }, null, 2) + '\n');
}

await main();
