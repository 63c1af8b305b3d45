// Curves, comparisons, diagrams and the summary, from real runs and the book's
// models: the log gen train writes, the figures drawn from it, gen graph's
// diagram of NetResDeep (its ResBlock drawn once, ×10), gen inspect's totals.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { Net, NetResDeep, NetWidth } from '../models/book.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { openModule } from '../src/api/open.js';
import { train } from '../src/api/workflow.js';
import { inspectGraph } from '../src/cli/inspect.js';
import { designs } from '../src/cli/compare.js';
import { trace } from '../src/graph/trace.js';
import { decodeImage, type RgbaImage } from '../src/io/image.js';
import { readRunLog } from '../src/train/log.js';
import { compareSpec, vegaLiteSvg } from '../src/viz/charts.js';
import { graphDot, graphSvg, repeats } from '../src/viz/graph.js';
import { svgToPng } from '../src/viz/render.js';

const root = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-charts-'));

function gen(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/gen.js'), ...args], { cwd: root, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** How many pixels are close to a colour. */
function count(img: RgbaImage, rgb: number[], tol = 12): number {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 4) if (rgb.every((v, k) => Math.abs(img.data[i + k] - v) <= tol)) n++;
  return n;
}

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

describe('training log and curves', () => {
  it('gen train --save writes the log beside the checkpoint and draws its curves', () => {
    const ck = path.join(tmp, 'net.safetensors');
    const r = gen('train', 'models/book.ts', '--model', 'Net', '--backend', 'interp', '--epochs', '3', '--limit', '64', '--save', ck);
    expect(r.code, r.err).toBe(0);
    const log = readRunLog(path.join(tmp, 'net.log.jsonl'));
    expect(log.run).toMatchObject({ model: 'Net', backend: 'interp', seed: 0, batchSize: 64, epochs: 3, images: 64 });
    expect(log.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    for (const e of log.epochs) {
      expect(e.loss).toBeGreaterThan(0);
      expect(e.trainAccuracy).toBeGreaterThanOrEqual(0);
      expect(e.valAccuracy).toBeGreaterThanOrEqual(0);
      expect(e.lr).toBe(0.01);
      expect(e.imagesPerSecond).toBeGreaterThan(0);
    }
    // the final accuracies are the ones gen train printed
    expect(r.out).toContain(`Accuracy val: ${log.final!.valAccuracy!.toFixed(4)}`);
    expect(fs.readFileSync(path.join(tmp, 'net.curves.svg'), 'utf8')).toContain('training loss');
    const png = decodeImage(fs.readFileSync(path.join(tmp, 'net.curves.png')), 'curves');
    expect(png.width).toBeGreaterThan(600);
    expect(png.height).toBeGreaterThan(250);
    // the two accuracy lines: Vega's first two category colours
    expect(count(png, [0x4c, 0x78, 0xa8])).toBeGreaterThan(100);
    expect(count(png, [0xf5, 0x85, 0x18])).toBeGreaterThan(50);
  });

  it('gen compare: designs with error bars over seeds (figure 8.13)', async () => {
    const data = small(96);
    const logs: string[] = [];
    for (const [Model, name] of [
      [Net, 'net'],
      [NetWidth, 'netwidth'],
    ] as const)
      for (const seed of [0, 1]) {
        manualSeed(seed);
        const m = await openModule(new Model(), { backend: 'interp', seed });
        const file = path.join(tmp, `${name}-s${seed}.log.jsonl`);
        await train(m, data, { epochs: 2, batchSize: 32, lr: 1e-2, seed, runLog: { file, run: { backend: 'interp' } } });
        logs.push(file);
      }
    const ds = designs(logs);
    expect(ds.map((d) => [d.design, d.runs.map((r) => r.seed)])).toEqual([
      ['Net', [0, 1]],
      ['NetWidth', [0, 1]],
    ]);
    const r = gen('compare', ...logs, '--out', path.join(tmp, 'compare.png'));
    expect(r.code, r.err).toBe(0);
    // mean and sample sd of the two seeds' final accuracies, by hand
    const [a, b] = logs.slice(0, 2).map((f) => readRunLog(f).final!);
    const msd = (x: number, y: number) => `${((x + y) / 2).toFixed(4)} ± ${(Math.abs(x - y) / Math.SQRT2).toFixed(4)}`;
    expect(r.out).toContain(
      `Net       train ${msd(a.trainAccuracy, b.trainAccuracy)}  val ${msd(a.valAccuracy!, b.valAccuracy!)}  (2 runs, seeds 0, 1)`,
    );
    const png = decodeImage(fs.readFileSync(path.join(tmp, 'compare.png')), 'compare');
    expect(count(png, [0x4c, 0x78, 0xa8])).toBeGreaterThan(500); // train bars
    expect(count(png, [0xf5, 0x85, 0x18])).toBeGreaterThan(500); // val bars
    // error bars: the spec draws a rule from mean - sd to mean + sd
    const rows = [{ design: 'a', split: 'train' as const, accuracy: 0.9, sd: 0.02, runs: 2 }];
    expect(await vegaLiteSvg(compareSpec(rows, 't'))).toMatch(/<line|<path/);
    expect(gen('compare', path.join(tmp, 'missing.log.jsonl'), '--out', path.join(tmp, 'x.png')).err).toMatch(
      /training log not found: .*missing\.log\.jsonl/,
    );
  });
});

describe('gen graph and gen inspect', () => {
  it('NetResDeep: its shared ResBlock drawn once as ×10, the skip connection as such, laid out by Graphviz', async () => {
    const g = trace(new NetResDeep());
    const [r] = repeats(g);
    expect(r.calls.map((c) => c.path)).toEqual([...Array(10).keys()].map((k) => `resblocks.${k}`));
    const dot = graphDot(g);
    expect(dot.match(/Conv2d 32→32/g)).toHaveLength(1);
    expect(dot).toContain('ResBlock ×10: resblocks.0 … resblocks.9');
    expect(dot.match(/label=" skip"/g)).toHaveLength(1);
    expect(graphDot(g, { expand: true }).match(/label=" skip"/g)).toHaveLength(10);
    const svg = await graphSvg(g);
    expect(svg).toContain('Generated by graphviz');
    const png = decodeImage(await svgToPng(svg), 'graph');
    expect(png.height).toBeGreaterThan(png.width);
    expect(count(png, [0xcc, 0x41, 0x25], 30)).toBeGreaterThan(20); // the dashed skip edge
    expect(count(png, [0xcf, 0xe2, 0xf3], 4)).toBeGreaterThan(1000); // conv boxes
    const cli = gen('graph', 'models/book.ts', '--model', 'NetResDeep', '--out', path.join(tmp, 'net.svg'));
    expect(cli.out).toContain('drawn once: ResBlock ×10');
  });

  it("gen inspect: multiply-adds and output sizes per layer (the book's Net: 0.75 M)", () => {
    const r = inspectGraph(trace(new Net()));
    expect(r.multAdds).toBe(16 * 32 * 32 * 27 + 8 * 16 * 16 * 144 + 512 * 32 + 32 * 2);
    expect(r.layers[1]).toMatchObject({ layer: 'Conv2d 3→16, 3×3, pad 1', multAdds: 442368, outputBytes: 16 * 32 * 32 * 4 });
    // conv1 and tanh, the pool, conv2 and tanh, the pool, fc1 and tanh, fc2 (the view stores nothing)
    expect(r.activationBytes).toBe(4 * (2 * 16 * 1024 + 16 * 256 + 2 * 8 * 256 + 8 * 64 + 2 * 32 + 2));
    const text = gen('inspect', 'models/book.ts', '--model', 'Net').out;
    expect(text).toMatch(/^1 +conv1 +Conv2d 3→16, 3×3, pad 1 +\[B, 16, 32, 32\] +448 +442\.4 k +64\.0 KiB/m);
    expect(text).toContain('per image: 753.7 k mult-adds');
  });
});
