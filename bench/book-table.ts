// The book's figure 8.13 as a table: each chapter-8 model trained on the real
// CIFAR-2 (../shared/data/cifar10, 10,000 train / 2,000 val), compiled CPU backend.
//   npx tsx bench/book-table.ts [--epochs 100] [--deep-epochs 20] [--models Net,...] [--json out.json]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { manualSeed } from 'tensorkiln';
import { openModel } from '../src/api/open.js';
import { cifar2Data } from '../src/api/data.js';
import { train } from '../src/api/workflow.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (k: string) => (argv.includes(`--${k}`) ? argv[argv.indexOf(`--${k}`) + 1] : undefined);
const epochs = Number(opt('epochs') ?? 100);
const deepEpochs = Number(opt('deep-epochs') ?? 20);
const runs: { label: string; model: string; l2?: number; weightDecay?: number }[] = [
  { label: 'Net', model: 'Net' },
  { label: 'Net + L2 (λ=1e-3)', model: 'Net', l2: 1e-3 },
  { label: 'NetWidth', model: 'NetWidth' },
  { label: 'NetDropout', model: 'NetDropout' },
  { label: 'NetBatchNorm', model: 'NetBatchNorm' },
  { label: 'NetDepth', model: 'NetDepth' },
  { label: 'NetRes', model: 'NetRes' },
  { label: 'NetResDeep', model: 'NetResDeep' },
];
const only = opt('models')?.split(',');
const data = cifar2Data(path.resolve(root, '../shared/data/cifar10'));
const rows = [];
for (const r of runs.filter((x) => !only || only.includes(x.label) || only.includes(x.model))) {
  const n = r.model === 'NetResDeep' ? deepEpochs : epochs;
  manualSeed(0);
  const model = await openModel({ file: path.join(root, 'models/book.ts'), model: r.model }, { backend: 'cpu', maxBatch: 256 });
  const res = await train(model, data, {
    epochs: n,
    batchSize: 64,
    lr: 1e-2,
    seed: 0,
    l2: r.l2,
    weightDecay: r.weightDecay,
    log: (l) => console.error(`${r.label}: ${l}`),
  });
  const row = {
    ...r,
    epochs: n,
    seconds: res.seconds,
    imgPerS: (n * data.train.n) / res.seconds,
    train: res.trainAccuracy,
    val: res.valAccuracy,
    losses: res.losses.filter((_, i) => i === 0 || (i + 1) % 10 === 0),
  };
  rows.push(row);
  console.error(
    `${r.label}: ${n} epochs, ${res.seconds.toFixed(1)} s, train ${res.trainAccuracy.toFixed(3)}, val ${res.valAccuracy.toFixed(3)}`,
  );
}
console.log('| model | epochs | train time (s) | img/s | train acc | val acc |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.label} | ${r.epochs} | ${r.seconds.toFixed(1)} | ${Math.round(r.imgPerS)} | ${r.train.toFixed(3)} | ${r.val.toFixed(3)} |`,
  );
const out = opt('json');
if (out) fs.writeFileSync(out, JSON.stringify(rows, null, 2) + '\n');
