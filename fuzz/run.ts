// npm run fuzz [-- --runs 1000000] [--targets pickle,zip-pt] [--seed N]: the long run.
// Splits the runs over the targets, replays fuzz/regressions first, prints
// what it ran and exits 1 on any crash, hang (> 1 s) or growth over 1 GB,
// keeping the shrunk input in fuzz/crashes/<target>/.
import fs from 'node:fs';
import { intFlag } from '../src/cli/flags.js';
import { check, fuzz, regressions, type Finding } from './engine.js';
import { targets } from './targets.js';

const opt = (k: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const total = intFlag('runs', opt('runs') ?? '1000000', { min: 1 });
const seed = intFlag('seed', opt('seed') ?? String(Date.now() % 2 ** 31), { min: 0 });
const chosen = opt('targets')?.split(',') ?? targets.map((t) => t.name);
const unknown = chosen.filter((n) => !targets.some((t) => t.name === n));
if (unknown.length) throw new Error(`unknown fuzz target(s) ${unknown.join(', ')}; known: ${targets.map((t) => t.name).join(', ')}`);

const findings: Finding[] = [];
const t0 = performance.now();
let ran = 0;
for (const t of targets.filter((x) => chosen.includes(x.name))) {
  for (const file of regressions(t.name)) {
    ran++;
    const f = check(t, new Uint8Array(fs.readFileSync(file)));
    if (f) findings.push({ target: t.name, ...f, file });
  }
  const start = performance.now();
  const r = fuzz(t, Math.ceil(total / chosen.length), seed);
  ran += r.ran;
  if (r.finding) findings.push(r.finding);
  const s = (performance.now() - start) / 1000;
  console.log(`${t.name}: ${r.ran} inputs in ${s.toFixed(1)} s (${Math.round(r.ran / s)}/s)${r.finding ? `: ${r.finding.kind}` : ''}`);
}
console.log(
  `fuzz: ${ran} inputs over ${chosen.length} targets in ${((performance.now() - t0) / 1000).toFixed(0)} s (seed ${seed}): ` +
    `${findings.length ? `${findings.length} finding(s)` : 'no crash, hang or blow-up'}`,
);
for (const f of findings) console.log(`  ${f.target}: ${f.kind}: ${f.message}${f.file ? ` (${f.file})` : ''}`);
process.exitCode = findings.length ? 1 : 0;
