// Picks data seeds for the multi-step golden fixtures (tools/make_golden_steps.py FIXTURES)
// whose float64 replay stays away from ReLU/max-pool boundaries: two correct float32
// implementations may break a near-tie differently and then drift apart over the steps.
//
//   [PYTHON=/usr/bin/python3] npx tsx tools/pick-step-seeds.ts [--tries 12] [case ...]
//
// For each case it regenerates the fixture with data_seed + 1, + 2, ... into /tmp and prints
// the replay margins; the seeds go into FIXTURES by hand (test/golden-margin.test.ts checks them).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { replayMargin, type Margins } from './export-reference.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EXTRA = path.join(ROOT, 'test/fixtures/golden-extra');

/**
 * The margin a multi-step fixture needs (over every forward of its replay, the eval one after
 * the last step included): 1e-5, or 1e-6 in a net with a ReLU, where some ReLU input is always
 * near 0 (a max-pool after it then sees that value as a top-2 gap) and 1e-5 is out of reach.
 */
export function requiredMargin(m: Margins): number {
  return Number.isFinite(m.relu) ? 1e-6 : 1e-5;
}

function main(argv: string[]): void {
  let tries = 12;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--tries') tries = Number(argv[++i]);
    else names.push(argv[i]);
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-seeds-'));
  const show = (m: Margins) =>
    `relu ${m.relu.toExponential(2)} maxpool ${m.maxpool.toExponential(2)}${Math.min(m.relu, m.maxpool) >= requiredMargin(m) ? '  ok' : ''}`;
  for (const name of names.length ? names : fs.readdirSync(EXTRA)) {
    const c = JSON.parse(fs.readFileSync(path.join(EXTRA, name, 'case.json'), 'utf8'));
    const tr = c.train;
    console.log(`${name} now: seed ${c.seed} data_seed ${c.data_seed} ${show(replayMargin(path.join(EXTRA, name), true))}`);
    for (let k = 1; k <= tries; k++) {
      const out = path.join(tmp, `${name}_${c.data_seed + k}`);
      const args = [
        '--model',
        `book_models:${c.model}`,
        '--args',
        JSON.stringify(c.args),
        '--batch',
        String(c.batch),
        '--seed',
        String(c.seed),
        '--data-seed',
        String(c.data_seed + k),
        '--lr',
        String(tr.lr),
        '--momentum',
        String(tr.momentum),
        '--weight-decay',
        String(tr.weight_decay),
        '--l1',
        String(tr.l1_lambda),
        '--l2',
        String(tr.l2_lambda),
      ];
      const py = process.env.PYTHON ?? '/usr/bin/python3';
      const r = spawnSync(
        py,
        [path.join(ROOT, 'tools/make_golden_steps.py'), '--steps', String(tr.steps), ...args, '--out', out, '--case', name],
        { encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(r.stderr);
      console.log(`  data_seed ${c.data_seed + k}: ${show(replayMargin(out, true))}`);
    }
  }
  console.log(`candidates in ${tmp}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
