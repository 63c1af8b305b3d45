// npm run bench:recipes [-- lenet] [resnet20] [--epochs N] [--limit N]
//
// The recipes side by side with PyTorch 1.13 (bench/torch_recipe.py) in
// one run: the same model, the same initial weights, the same normalised data
// and the same recipe; each side its own shuffles (and augmentation draws).
//   lenet:    LeNet-5 on Fashion-MNIST (Debian's dataset-fashion-mnist), Adam lr 1e-3, batch 64, 10 epochs
//   resnet20: ResNet-20 on CIFAR-format data (../shared/data/cifar10, the book's airplanes and birds),
//             random crop (padding 4) + flip, SGD-Nesterov lr 0.1 momentum 0.9 wd 5e-4, cosine per step, batch 64, 3 epochs
// Prints per epoch the training loss, the validation accuracy and img/s of both; PyTorch
// runs twice (seeds 0 and 1: other shuffles and augmentation draws), its spread is the noise.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { manualSeed } from '../src/index.js';
import { loadData, type ImageData } from '../src/api/data.js';
import { openModule } from '../src/api/open.js';
import { saveWeights, train, type TrainOptions } from '../src/api/workflow.js';
import { accuracy } from '../src/train/loop.js';
import { blackFill } from '../src/data/augment.js';
import { LeNet5, ResNet20 } from '../models/zoo.js';
import type { Module } from '../src/graph/module.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (k: string) => {
  const i = argv.indexOf(`--${k}`);
  return i >= 0 ? Number(argv[i + 1]) : undefined;
};
const which = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));

interface Recipe {
  name: string;
  model: () => Module;
  torchModel: string;
  torchArgs?: Record<string, unknown>;
  data: () => ImageData;
  train: Omit<TrainOptions, 'epochs' | 'batchSize' | 'seed'>;
  torch: Record<string, unknown>;
  epochs: number;
}

const recipes: Record<string, Recipe> = {
  lenet: {
    name: 'LeNet-5, Fashion-MNIST, Adam',
    model: () => new LeNet5(),
    torchModel: 'LeNet5',
    data: () => loadData('fashion-mnist:/usr/share/datasets/fashion-mnist'),
    train: { lr: 1e-3, optimizer: 'adam' },
    torch: { optimizer: { kind: 'adam', lr: 1e-3, wd: 0 } },
    epochs: 10,
  },
  resnet20: {
    name: 'ResNet-20, CIFAR airplanes/birds, crop+flip, SGD-Nesterov + cosine',
    model: () => new ResNet20({ numClasses: 2 }),
    torchModel: 'ResNet20',
    torchArgs: { num_classes: 2 },
    data: () => loadData(`cifar2:${path.resolve(root, '../shared/data/cifar10')}`),
    train: {
      lr: 0.1,
      momentum: 0.9,
      nesterov: true,
      weightDecay: 5e-4,
      schedule: { schedule: { kind: 'cosine' }, interval: 'step' },
      augment: { crop: 4, flip: true },
    },
    torch: { optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, wd: 5e-4 }, cosine_steps: true, augment: true },
    epochs: 3,
  },
};

function limit(d: ImageData, n: number | undefined): ImageData {
  if (n === undefined) return d;
  const cut = (s: ImageData['train']) => ({
    ...s,
    n: Math.min(n, s.n),
    x: s.x.subarray(0, Math.min(n, s.n) * (s.x.length / s.n)),
    y: s.y.subarray(0, Math.min(n, s.n)),
  });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

async function run(key: string): Promise<void> {
  const r = recipes[key];
  if (!r) throw new Error(`unknown recipe '${key}' (${Object.keys(recipes).join(', ')})`);
  const epochs = opt('epochs') ?? r.epochs;
  const data = limit(r.data(), opt('limit'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tk-recipe-${key}-`));
  manualSeed(0);
  const model = await openModule(r.model(), { backend: 'cpu', maxBatch: 256, outDir: path.join(os.tmpdir(), 'tk-recipe-packages') });
  saveWeights(model, path.join(dir, 'init.safetensors'));
  for (const [split, s] of [
    ['train', data.train],
    ['val', data.val],
  ] as const) {
    fs.writeFileSync(path.join(dir, `${split}_x.f32`), s.x);
    fs.writeFileSync(path.join(dir, `${split}_y.i32`), s.y);
  }
  const shape = [...model.graph.inputShape];
  const cfg = {
    dir,
    model: r.torchModel,
    args: r.torchArgs ?? {},
    shape,
    batch: 64,
    epochs,
    fill: blackFill(data.normalization),
    ...r.torch,
  };

  console.log(`\n${r.name}: ${data.train.n} train / ${data.val.n} val images of ${shape.join('x')}, batch 64, ${epochs} epochs`);
  const ours: { loss: number; valAccuracy: number; seconds: number }[] = [];
  const t = await train(model, data, {
    ...r.train,
    epochs,
    batchSize: 64,
    seed: 0,
    onEpoch: (_e, loss, s) => {
      ours.push({ loss, valAccuracy: accuracy(model, data.val), seconds: s.seconds });
    },
  });
  // PyTorch twice, with other shuffles and augmentation draws: the spread of its losses is the run-to-run noise
  const theirs = [0, 1].map((seed) => {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, seed }));
    const py = spawnSync('/usr/bin/python3', [path.join(root, 'bench/torch_recipe.py'), path.join(dir, 'config.json')], {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    });
    if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
    return (JSON.parse(py.stdout.trim().split('\n').pop()!) as { epochs: typeof ours }).epochs;
  });
  console.log(
    '| epoch | loss tensorkiln | loss PyTorch (seed 0, 1) | val acc tensorkiln | val acc PyTorch (seed 0, 1) | img/s tensorkiln | img/s PyTorch |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  const ips = (s: number) => Math.round(data.train.n / s);
  for (let e = 0; e < epochs; e++) {
    const a = ours[e];
    const [b, c] = theirs.map((t) => t[e]);
    console.log(
      `| ${e + 1} | ${a.loss.toFixed(4)} | ${b.loss.toFixed(4)}, ${c.loss.toFixed(4)} | ${a.valAccuracy.toFixed(4)} | ` +
        `${b.valAccuracy.toFixed(4)}, ${c.valAccuracy.toFixed(4)} | ${ips(a.seconds)} | ${ips((b.seconds + c.seconds) / 2)} |`,
    );
  }
  const sum = (xs: { seconds: number }[]) => xs.reduce((s, x) => s + x.seconds, 0);
  const torchTime = (sum(theirs[0]) + sum(theirs[1])) / 2;
  console.log(
    `final val accuracy: tensorkiln ${t.valAccuracy.toFixed(4)}, PyTorch ${theirs.map((x) => x[epochs - 1].valAccuracy.toFixed(4)).join(', ')}; ` +
      `training time ${sum(ours).toFixed(1)} s vs ${torchTime.toFixed(1)} s (mean of PyTorch's two runs, ${(torchTime / sum(ours)).toFixed(2)}x); ` +
      `load ${os.loadavg()[0].toFixed(1)}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

for (const k of which.length ? which : Object.keys(recipes)) await run(k);
