// npm run bench [-- --json out.json] [--models Net,NetWidth] [--reps 7] [--threads 2] [--no-torch] [--no-interp]
//
// Compiled CPU kernels against the reference interpreter and PyTorch 1.13 (2
// threads), on the same real CIFAR-2 batches (airplanes and birds of
// data_batch_1.bin, normalised per channel): training img/s at batch 64, eval
// img/s at batch 256, batch-1 latency, plus gen build time cold and warm.
// Every figure is the median of repeated timings; ratios are compiled / other.
// Roofline: achieved FLOP/s (2 per multiply-add of the convolutions and linear
// layers) against the FMA peak of the cores used, at the nominal clock of
// /proc/cpuinfo (turbo clocks make the true peak higher).
// The threads of one step meet at barriers: on a machine where other
// processes hold the cores, 2 threads can be much slower than 1 (--threads 1).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPackage } from '../src/codegen/build.js';
import type { Graph, HostTensor } from '../src/graph/ir.js';
import { numel } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { load } from '../src/runtime/index.js';
import { bookModels } from '../models/book.js';
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
const models = (opt('models') ?? 'Net,NetWidth,NetBatchNorm,NetResDeep').split(',') as (keyof typeof bookModels)[];
const reps = intFlag('reps', opt('reps') ?? '7', { min: 1 });
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

// ---------------------------------------------------------------- FLOPs per image
function macs(g: Graph): { fwd: number; train: number } {
  let fwd = 0;
  let bwd = 0;
  const rg = new Set<number>();
  for (const n of g.nodes) {
    const needs = n.inputs.some((i) => rg.has(i));
    if (n.op !== 'input' && (n.params.length || needs)) rg.add(n.id);
    let m = 0;
    if (n.op === 'conv2d') m = numel(n.shape) * n.attrs.inC * n.attrs.kh * n.attrs.kw;
    if (n.op === 'linear') m = n.attrs.inF * n.attrs.outF;
    fwd += m;
    bwd += m + (needs ? m : 0);
  }
  return { fwd, train: fwd + bwd };
}

function peakFlops(threads: number): { flops: number; ghz: number; lanes: number } {
  const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const ghz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(info)?.[1] ?? 2500) / 1000;
  const lanes = /avx512f/.test(info) ? 16 : 8;
  return { flops: threads * 2 /* FMA pipes */ * lanes * 2 * ghz * 1e9, ghz, lanes };
}

interface Row {
  model: string;
  train: number;
  eval: number;
  latencyMs: number;
  buildColdS: number;
  buildWarmS: number;
  interpTrain?: number;
  interpEval?: number;
  torchTrain?: number;
  torchEval?: number;
  torchLatencyMs?: number;
  trainGflops: number;
  evalGflops: number;
}

async function main(): Promise<void> {
  const { x, y } = cifar2Batch(2048);
  const n = y.length;
  const threads = intFlag('threads', opt('threads') ?? String(Math.min(2, os.cpus().length)), { min: 1, max: 64 });
  const rows: Row[] = [];
  const out = path.join(os.tmpdir(), 'tk-bench');
  for (const name of models) {
    const model = new bookModels[name]();
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    fs.rmSync(path.join(out, name.toLowerCase()), { recursive: true, force: true });
    const cold = buildPackage(graph, { outRoot: out, name: name.toLowerCase(), initialState: state });
    const warm = buildPackage(graph, { outRoot: out, name: name.toLowerCase(), initialState: state });
    const m = await load(cold.dir, { maxBatch: 256 });
    m.numThreads = threads;
    m.train();
    const nb = Math.floor(n / 64);
    const stepAt = (i: number) =>
      m.trainStep(x.subarray((i % nb) * 64 * 3072, ((i % nb) + 1) * 64 * 3072), y.subarray((i % nb) * 64, ((i % nb) + 1) * 64), 64, {
        lr: 1e-2,
      });
    for (let i = 0; i < 5; i++) stepAt(i);
    const train: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      for (let i = 0; i < 16; i++) stepAt(i);
      train.push((16 * 64) / ((performance.now() - t) / 1000));
    }
    m.eval();
    const ev: number[] = [];
    const eb = Math.floor(n / 256);
    for (let r = 0; r < reps; r++) {
      const t = performance.now();
      for (let i = 0; i < 8; i++) m.forward(x.subarray((i % eb) * 256 * 3072, ((i % eb) + 1) * 256 * 3072), 256);
      ev.push((8 * 256) / ((performance.now() - t) / 1000));
    }
    const lat: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const t = performance.now();
      m.forward(x.subarray((i % n) * 3072, ((i % n) + 1) * 3072), 1);
      lat.push(performance.now() - t);
    }
    const f = macs(graph);
    const row: Row = {
      model: name,
      train: median(train),
      eval: median(ev),
      latencyMs: median(lat),
      buildColdS: cold.seconds,
      buildWarmS: warm.seconds,
      trainGflops: (median(train) * 2 * f.train) / 1e9,
      evalGflops: (median(ev) * 2 * f.fwd) / 1e9,
    };
    if (!flag('no-interp')) {
      const it = new Interpreter(graph, state);
      const t0 = performance.now();
      it.trainStep(x.subarray(0, 64 * 3072), y.subarray(0, 64), 64, { lr: 1e-2 });
      row.interpTrain = 64 / ((performance.now() - t0) / 1000);
      const t1 = performance.now();
      it.forward(x.subarray(0, 64 * 3072), 64, { train: false });
      row.interpEval = 64 / ((performance.now() - t1) / 1000);
    }
    rows.push(row);
    process.stderr.write(`${name}: done\n`);
  }
  if (!flag('no-torch') && spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) {
    const file = path.join(os.tmpdir(), 'tk-bench-data.f32');
    const both = new Float32Array(n * 3072 + n);
    both.set(x);
    both.set(Float32Array.from(y), n * 3072);
    fs.writeFileSync(file, Buffer.from(both.buffer));
    const r = spawnSync('/usr/bin/python3', [path.join(root, 'bench/torch_bench.py'), file, String(n), models.join(','), String(reps)], {
      encoding: 'utf8',
    });
    for (const line of r.stdout.split('\n').filter(Boolean)) {
      const t = JSON.parse(line) as { model: string; train: number; eval: number; latency_ms: number };
      const row = rows.find((q) => q.model === t.model)!;
      row.torchTrain = t.train;
      row.torchEval = t.eval;
      row.torchLatencyMs = t.latency_ms;
    }
    if (r.status !== 0) process.stderr.write(`PyTorch comparator failed:\n${r.stderr}\n`);
  }
  const peak = peakFlops(threads);
  const fmt = (v: number | undefined, d = 0) => (v === undefined ? '-' : v.toFixed(d));
  const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}x` : '-');
  const lines = [
    `compiled CPU (${threads} threads) vs PyTorch 1.13 (2 threads) vs interpreter; CIFAR-2 batches; medians of ${reps} runs`,
    `peak ${(peak.flops / 1e9).toFixed(0)} GFLOP/s assumed (${threads} cores x 2 FMA x ${peak.lanes} lanes x 2 x ${peak.ghz.toFixed(2)} GHz)`,
    '',
    '| model | train img/s (b64) | vs torch | vs interp | eval img/s (b256) | vs torch | latency b1 ms | torch ms | train GFLOP/s (% peak) | eval GFLOP/s (% peak) | build cold / warm s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.model} | ${fmt(r.train)} | ${ratio(r.train, r.torchTrain)} | ${ratio(r.train, r.interpTrain)} | ${fmt(r.eval)} | ${ratio(r.eval, r.torchEval)} | ${fmt(r.latencyMs, 4)} | ${fmt(r.torchLatencyMs, 3)} | ${r.trainGflops.toFixed(1)} (${((100 * r.trainGflops * 1e9) / peak.flops).toFixed(0)}%) | ${r.evalGflops.toFixed(1)} (${((100 * r.evalGflops * 1e9) / peak.flops).toFixed(0)}%) | ${r.buildColdS.toFixed(2)} / ${r.buildWarmS.toFixed(3)} |`,
    ),
    '',
    `PyTorch: ${rows.map((r) => `${r.model} train ${fmt(r.torchTrain)} eval ${fmt(r.torchEval)}`).join('; ')}`,
    `interpreter (1 step): ${rows.map((r) => `${r.model} train ${fmt(r.interpTrain, 1)} eval ${fmt(r.interpEval, 1)}`).join('; ')}`,
    `load average at the end: ${os
      .loadavg()
      .map((v) => v.toFixed(2))
      .join(' ')}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  const json = opt('json');
  if (json) fs.writeFileSync(json, JSON.stringify({ threads, peakFlops: peak.flops, rows, loadavg: os.loadavg() }, null, 2) + '\n');
}

await main();
