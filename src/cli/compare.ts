// gen compare: the book's figure 8.13 from gen train logs: train and validation
// accuracy per design, with error bars over the seeds when a design ran several times.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { besideCheckpoint, readRunLog, type RunLog } from '../train/log.js';
import { example } from './help.js';

const DEFAULTS: Record<string, number | string | boolean> = {
  lr: 1e-2,
  optimizer: 'sgd',
  momentum: 0,
  nesterov: false,
  weightDecay: 0,
  l1: 0,
  l2: 0,
  schedule: 'constant',
  labelSmoothing: 0,
};

/** The log files an argument names: a log, a checkpoint (its log beside it), or a folder of logs. */
export function logFiles(arg: string): string[] {
  if (fs.existsSync(arg) && fs.statSync(arg).isDirectory()) {
    const found = fs
      .readdirSync(arg)
      .filter((f) => f.endsWith('.log.jsonl'))
      .sort()
      .map((f) => path.join(arg, f));
    if (!found.length) throw new Error(`${arg}: no gen train logs (*.log.jsonl) in this folder`);
    return found;
  }
  return [arg.endsWith('.jsonl') ? arg : besideCheckpoint(arg, 'log.jsonl')];
}

/** A design's name: the model, its arguments, and the training settings that differ from gen train's defaults. */
export function designOf(log: RunLog): string {
  const args = log.run.args && !['{}', ''].includes(log.run.args.trim()) ? ` ${log.run.args}` : '';
  const opts = Object.entries(log.run.options ?? {})
    .filter(([k, v]) => k in DEFAULTS && v !== DEFAULTS[k])
    .map(([k, v]) => ` ${k} ${v}`);
  return `${log.run.model}${args}${opts.join('')}`;
}

/** The accuracies a run ended with: the final eval-mode ones, else its last epoch's. */
function finalOf(log: RunLog, file: string): { train: number; val: number } {
  const last = log.epochs[log.epochs.length - 1];
  const f = log.final ?? (last && { trainAccuracy: last.trainAccuracy, valAccuracy: last.valAccuracy });
  if (!f) throw new Error(`${file}: the run has no epochs yet`);
  if (f.valAccuracy === null) throw new Error(`${file}: the run has no validation accuracy (no validation images)`);
  return { train: f.trainAccuracy, val: f.valAccuracy };
}

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
/** sample standard deviation; 0 for one value */
const sd = (v: number[]) => (v.length < 2 ? 0 : Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)));

export interface Design {
  design: string;
  runs: { file: string; seed: number; train: number; val: number }[];
}

/** Runs grouped by design (`label=run` names one), in the order first given. */
export function designs(args: string[]): Design[] {
  const out: Design[] = [];
  for (const arg of args) {
    const m = /^([^=]+)=(.+)$/.exec(arg);
    for (const file of logFiles(m ? m[2] : arg)) {
      const log = readRunLog(file);
      const name = m ? m[1] : designOf(log);
      let d = out.find((x) => x.design === name);
      if (!d) out.push((d = { design: name, runs: [] }));
      d.runs.push({ file, seed: log.run.seed, ...finalOf(log, file) });
    }
  }
  return out;
}

export function register(program: Command): void {
  example(
    program
      .command('compare <runs...>')
      .description("train and validation accuracy of gen train runs per design (the book's figure 8.13), error bars over seeds"),
    'gen compare runs/net.safetensors runs/netwidth.safetensors runs/netdropout.safetensors --out compare.png',
    'gen compare baseline=runs/net-s0.log.jsonl baseline=runs/net-s1.log.jsonl runs/ --out compare.svg',
  )
    .requiredOption('--out <file.png|svg>', 'the figure')
    .option('--title <text>', 'the figure title', 'Accuracy per design')
    .action(async (runs: string[], o: { out: string; title: string }) => {
      const ds = designs(runs);
      const rows = ds.flatMap((d) =>
        (['train', 'val'] as const).map((split) => {
          const v = d.runs.map((r) => r[split]);
          return { design: d.design, split, accuracy: mean(v), sd: sd(v), runs: v.length };
        }),
      );
      const w = Math.max(6, ...ds.map((d) => d.design.length));
      for (const d of ds) {
        const [t, v] = rows.filter((r) => r.design === d.design);
        const pm = (r: typeof t) => `${r.accuracy.toFixed(4)}${r.runs > 1 ? ` ± ${r.sd.toFixed(4)}` : ''}`;
        process.stdout.write(
          `${d.design.padEnd(w)}  train ${pm(t)}  val ${pm(v)}  (${d.runs.length} run${d.runs.length > 1 ? 's' : ''}, seeds ${d.runs.map((r) => r.seed).join(', ')})\n`,
        );
      }
      const [{ compareSpec, vegaLiteSvg }, { writeFigure }] = await Promise.all([import('../viz/charts.js'), import('../viz/render.js')]);
      const seeds = Math.max(...ds.map((d) => d.runs.length));
      const title = seeds > 1 ? `${o.title} (error bars: ±1 sd over up to ${seeds} seeds)` : o.title;
      await writeFigure(o.out, await vegaLiteSvg(compareSpec(rows, title)));
      process.stdout.write(`wrote ${o.out}\n`);
    });
}
