// gen train | eval | predict: the book's CIFAR-2 workflow from the command line.
import type { Command } from 'commander';
import { openModel, type BackendName } from '../api/open.js';
import {
  cifar2Data,
  cifar2Normalization,
  checkpointNormalization,
  evaluate,
  loadWeights,
  predict,
  train,
  type Cifar2Data,
} from '../api/workflow.js';
import { modelOptions, type ModelOptions } from './common.js';
import { example, redraws } from './help.js';

interface TrainCli extends ModelOptions {
  data?: string;
  epochs: string;
  batchSize: string;
  lr: string;
  momentum: string;
  weightDecay: string;
  l1: string;
  l2: string;
  seed: string;
  backend: BackendName;
  save?: string;
  resume?: string;
  limit?: string;
  json?: boolean;
}

const num = (name: string, v: string, integer = false): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new Error(`--${name} must be a${integer ? 'n integer' : ' finite number'}, got '${v}'`);
  return n;
};

/** Keeps the first `n` images of each split: quick runs and demos. */
function limit(d: Cifar2Data, n: number | undefined): Cifar2Data {
  if (n === undefined) return d;
  const cut = (s: Cifar2Data['train']) => {
    const k = Math.min(n, s.n);
    return { ...s, n: k, x: s.x.subarray(0, (k * s.x.length) / s.n), y: s.y.subarray(0, k) };
  };
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

// The progress bar redraws one stderr line; stdout keeps only the results, so it can be redirected.
function progress(epoch: number, total: number): void {
  const width = 30;
  const done = Math.round((epoch / total) * width);
  process.stderr.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] epoch ${epoch}/${total}${epoch === total ? '\n' : ''}`);
}

const clearProgress = () => process.stderr.write('\r\x1b[K');

export function register(program: Command): void {
  const backendOpt = [
    '--backend <name>',
    'cpu | cuda | interp | cuda-emu (the CUDA kernels on the CPU emulator: slow, for tests)',
    'cpu',
  ] as const;
  modelOptions(
    example(
      program
        .command('train <model.ts>')
        .description("train on CIFAR-2 (the shipped sample unless --data), printing the book's loss lines"),
      'gen train model.ts --epochs 20 --save runs/net.safetensors',
      'gen train model.ts --epochs 5 --json > run.json',
    ),
  )
    .option('--data <dir>', 'folder with CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)')
    .option('--epochs <n>', 'epochs', '100')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--lr <x>', 'learning rate', '1e-2')
    .option('--momentum <x>', 'SGD momentum', '0')
    .option('--weight-decay <x>', 'SGD weight decay (every parameter)', '0')
    .option('--l1 <x>', 'L1 penalty λ added to the loss', '0')
    .option('--l2 <x>', 'L2 penalty λ added to the loss', '0')
    .option('--seed <n>', 'seed of the shuffle and dropout masks', '0')
    .option(...backendOpt)
    .option('--save <ckpt.safetensors>', 'checkpoint after every epoch (atomic)')
    .option('--resume <ckpt.safetensors>', 'continue a run from its checkpoint')
    .option('--limit <n>', 'use only the first n images of each split')
    .option('--json', 'print one JSON object (losses, accuracies, time) instead of the loss lines')
    .action(async (file: string, o: TrainCli) => {
      const epochs = num('epochs', o.epochs, true);
      const batchSize = num('batch-size', o.batchSize, true);
      const model = await openModel(
        { file, ...o },
        { backend: o.backend, seed: num('seed', o.seed, true), maxBatch: Math.max(batchSize, 256) },
      );
      const norm = o.resume ? checkpointNormalization(o.resume) : undefined;
      const data = limit(cifar2Data(o.data, norm), o.limit === undefined ? undefined : num('limit', o.limit, true));
      const bar = redraws(process.stderr);
      const r = await train(model, data, {
        epochs,
        batchSize,
        seed: num('seed', o.seed, true),
        lr: num('lr', o.lr),
        momentum: num('momentum', o.momentum),
        weightDecay: num('weight-decay', o.weightDecay),
        l1: num('l1', o.l1),
        l2: num('l2', o.l2),
        save: o.save,
        resume: o.resume,
        log: (line) => {
          if (o.json) return;
          if (bar) clearProgress();
          process.stdout.write(line + '\n');
        },
        onEpoch: bar ? (e) => progress(e, epochs) : undefined,
      });
      const ips = (r.losses.length * data.train.n) / r.seconds;
      if (o.json) {
        const { losses, seconds, trainAccuracy, valAccuracy } = r;
        const run = { model: model.graph.name, backend: o.backend, device: model.device ?? null, images: data.train.n };
        const json = { ...run, epochs: losses.length, losses, seconds, imagesPerSecond: ips, trainAccuracy, valAccuracy };
        process.stdout.write(JSON.stringify({ ...json, saved: o.save ?? null }, null, 2) + '\n');
        return;
      }
      const on = model.device ? `, ${model.device}` : '';
      process.stdout.write(
        `Trained ${r.losses.length} epochs on ${data.train.n} images in ${r.seconds.toFixed(2)} s (${Math.round(ips)} img/s, backend ${o.backend}${on})\n`,
      );
      process.stdout.write(`Accuracy train: ${r.trainAccuracy.toFixed(4)}\nAccuracy val: ${r.valAccuracy.toFixed(4)}\n`);
      if (o.save) process.stdout.write(`Saved ${o.save}\n`);
    });

  modelOptions(
    example(
      program.command('eval <model.ts>').description('accuracy of saved weights on the train and val splits'),
      'gen eval model.ts --weights runs/net.safetensors',
    ),
  )
    .requiredOption('--weights <file>', 'checkpoint, safetensors state_dict or PyTorch .pt')
    .option('--data <dir>', 'folder with CIFAR-10 binary batches (default: the shipped sample)')
    .option(...backendOpt)
    .option('--json', 'print JSON: {"train": accuracy, "val": accuracy}')
    .action(async (file: string, o: ModelOptions & { weights: string; data?: string; backend: BackendName; json?: boolean }) => {
      const model = await openModel({ file, ...o }, { backend: o.backend });
      const norm = loadWeights(model, o.weights);
      const acc = evaluate(model, cifar2Data(o.data, norm));
      if (o.json) process.stdout.write(JSON.stringify(acc, null, 2) + '\n');
      else process.stdout.write(`Accuracy train: ${acc.train.toFixed(4)}\nAccuracy val: ${acc.val.toFixed(4)}\n`);
    });

  modelOptions(
    example(
      program.command('predict <model.ts> <images...>').description('class and probabilities for PNG/JPEG images'),
      'gen predict model.ts --weights runs/net.safetensors bird.png airplane.jpg',
    ),
  )
    .requiredOption('--weights <file>', 'checkpoint (holds the normalisation) or state_dict')
    .option('--data <dir>', 'compute the normalisation from this CIFAR-10 folder when the weights carry none')
    .option(...backendOpt)
    .option('--json', 'print JSON')
    .action(
      async (
        file: string,
        images: string[],
        o: ModelOptions & { weights: string; data?: string; backend: BackendName; json?: boolean },
      ) => {
        const model = await openModel({ file, ...o }, { backend: o.backend });
        const norm = loadWeights(model, o.weights) ?? cifar2Normalization(o.data);
        const preds = predict(model, images, norm);
        if (o.json) process.stdout.write(JSON.stringify(preds, null, 2) + '\n');
        else
          for (const p of preds)
            process.stdout.write(`${p.file}: ${p.className} (${p.probabilities.map((v) => v.toFixed(3)).join(', ')})\n`);
      },
    );
}
