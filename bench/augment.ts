// npm run bench:augment [-- --images 2048 --reps 7 --models Net,ResNet20]
//
// What --augment crop,flip costs a CPU training epoch: the same epoch (real
// CIFAR-10 images of data_batch_1.bin (repeated to --images), normalised, batch 64, SGD) timed without
// and with augmentation, interleaved so that machine noise falls on both alike.
// Each figure is the median of --reps epochs; the ratio is with / without.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { manualSeed } from 'tensorkiln';
import { Net } from '../models/book.js';
import { ResNet20 } from '../models/zoo.js';
import { openModule } from '../src/api/open.js';
import { intFlag } from '../src/cli/flags.js';
import { resolveAugment } from '../src/data/augment.js';
import { CIFAR_SHAPE, readCifarBatch } from '../src/data/cifar.js';
import { channelStats, normalize } from '../src/data/transforms.js';
import { Rng } from '../src/util/rng.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (k: string) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const images = intFlag('images', opt('images') ?? '2048', { min: 64 });
const reps = intFlag('reps', opt('reps') ?? '7', { min: 1 });
const models = { Net: () => new Net(), ResNet20: () => new ResNet20({ numClasses: 10 }) };
const chosen = (opt('models') ?? 'Net,ResNet20').split(',') as (keyof typeof models)[];
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];

async function main(): Promise<void> {
  const raw = readCifarBatch(path.resolve(root, '../shared/data/cifar10/data_batch_1.bin'));
  // the batch file repeated up to --images (the sample holds about 2000)
  const n = images;
  const have = raw.labels.length;
  const bytes = new Uint8Array(n * 3072);
  for (let i = 0; i < n; i++) bytes.set(raw.images.subarray((i % have) * 3072, ((i % have) + 1) * 3072), i * 3072);
  const stats = channelStats(bytes, CIFAR_SHAPE);
  const x = normalize(bytes, stats, CIFAR_SHAPE);
  const aug = resolveAugment({ crop: 4, flip: true }, stats);
  console.log(`| model | images/epoch | epoch s, no augmentation | epoch s, crop+flip | ratio |`);
  console.log('| --- | --- | --- | --- | --- |');
  for (const name of chosen) {
    const make = models[name];
    if (!make) throw new Error(`--models: unknown ${name}; known: ${Object.keys(models).join(', ')}`);
    manualSeed(1);
    const m = await openModule(make(), { backend: 'cpu', outDir: path.join(os.tmpdir(), 'tensorkiln-bench-augment'), maxBatch: 64 });
    const labels = Int32Array.from({ length: n }, (_, i) => raw.labels[i % have] % (name === 'Net' ? 2 : 10));
    const rng = new Rng(3);
    const epoch = (a: typeof aug) => {
      const t0 = performance.now();
      m.trainEpoch(x, labels, rng.permutation(n), 64, { lr: 1e-3, momentum: 0.9 }, a);
      return (performance.now() - t0) / 1000;
    };
    epoch(undefined); // warm-up
    const plain: number[] = [];
    const withAug: number[] = [];
    for (let r = 0; r < reps; r++) {
      plain.push(epoch(undefined));
      withAug.push(epoch(aug));
    }
    const [p, a] = [median(plain), median(withAug)];
    console.log(`| ${name} | ${n} | ${p.toFixed(3)} | ${a.toFixed(3)} | ${(a / p).toFixed(3)} |`);
  }
}

void main();
