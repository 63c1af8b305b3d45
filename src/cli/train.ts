// gen train | eval | predict: the book's workflow from the command line, on CIFAR-2 or any --data.
import type { Command } from 'commander';
import type { ImageData } from '../api/data.js';
import { evaluateReport } from '../api/evaluate.js';
import { openModel, type BackendName } from '../api/open.js';
import { loadWeights, predict, train, weightsInfo, type Prediction } from '../api/workflow.js';
import { modelOptions, type ModelOptions } from './common.js';
import { accuracyLines, dataFor, dataLine, dataOptions, json, reportText, type DataCli } from './data.js';
import { intFlag, optimizerFlags, seedFlag, type OptimizerCli } from './flags.js';
import { example, redraws } from './help.js';
import { besideCheckpoint } from '../train/log.js';
import { recipeFlags, recipeOptions, type RecipeCli } from './recipe-flags.js';

interface TrainCli extends ModelOptions, DataCli, OptimizerCli, RecipeCli {
  epochs: string;
  batchSize: string;
  seed: string;
  backend: BackendName;
  save?: string;
  resume?: string;
  limit?: string;
  json?: boolean;
  allowNonfinite?: boolean;
}

const ALLOW_NONFINITE = ['--allow-nonfinite', 'load weights or normalisation holding NaN/Inf anyway (with a warning)'] as const;

/** Keeps the first `n` images of each split: quick runs and demos. */
function limit(d: ImageData, n: number | undefined): ImageData {
  if (n === undefined) return d;
  const cut = (s: ImageData['train']) => {
    const k = Math.min(n, s.n);
    return { ...s, n: k, x: s.x.subarray(0, (k * s.x.length) / s.n), y: s.y.subarray(0, k) };
  };
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

export function register(program: Command): void {
  const backendOpt = [
    '--backend <name>',
    'cpu | cuda | interp | cuda-emu (the CUDA kernels on the CPU emulator: slow, for tests)',
    'cpu',
  ] as const;
  const trainCmd = dataOptions(
    modelOptions(
      example(
        program
          .command('train <model.ts>')
          .description("train on CIFAR-2 (the shipped sample) or any --data, printing the book's loss lines"),
        'gen train model.ts --epochs 20 --save runs/net.safetensors',
        'gen train model.ts --data fashion-mnist:/usr/share/dataset-fashion-mnist --epochs 10 --json > run.json',
        'gen train resnet.ts --data cifar10:data/cifar-10-batches-bin --augment crop,flip --val 0.1 --patience 5 --save-best runs/best.safetensors',
      ),
    ),
    'training data',
  );
  recipeOptions(trainCmd)
    .option('--epochs <n>', 'epochs', '100')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--lr <x>', 'learning rate (the peak of onecycle)', '1e-2')
    .option('--optimizer <name>', 'sgd | adam | adamw (torch.optim semantics)', 'sgd')
    .option('--momentum <x>', 'SGD momentum', '0')
    .option('--nesterov', 'SGD with Nesterov momentum')
    .option('--betas <b1,b2>', 'Adam/AdamW betas (default 0.9,0.999)')
    .option('--eps <x>', 'Adam/AdamW eps (default 1e-8)')
    .option('--weight-decay <x>', 'weight decay (every parameter): added to the gradient, decoupled for adamw', '0')
    .option(
      '--schedule <spec>',
      'lr schedule: constant, step:SIZE[:GAMMA], multistep:M1,M2[:GAMMA], cosine[:T[:ETA_MIN]], linear[:START[:END[:N]]], onecycle[:MAX_LR]',
    )
    .option('--schedule-interval <unit>', 'what the schedule counts: epoch (default) or step')
    .option('--warmup <n>', 'linear warm-up over the first n epochs or steps (from lr/3), then the schedule')
    .option('--label-smoothing <x>', 'cross-entropy label smoothing in [0, 1]', '0')
    .option('--l1 <x>', 'L1 penalty λ added to the loss', '0')
    .option('--l2 <x>', 'L2 penalty λ added to the loss', '0')
    .option('--seed <n>', 'seed of the shuffle and dropout masks', '0')
    .option(...backendOpt)
    .option('--save <ckpt.safetensors>', 'checkpoint after every epoch (atomic)')
    .option('--resume <ckpt.safetensors>', 'continue a run from its checkpoint')
    .option('--limit <n>', 'use only the first n images of each split')
    .option('--json', 'print one JSON object (losses, accuracies, time) instead of the loss lines')
    .option(...ALLOW_NONFINITE)
    .action(async (file: string, o: TrainCli) => {
      // every flag checked before anything is built or read
      const epochs = intFlag('epochs', o.epochs, { min: 0 });
      const batchSize = intFlag('batch-size', o.batchSize, { min: 1, max: 1 << 20 });
      const seed = seedFlag(o.seed);
      const sgd = optimizerFlags(o);
      const recipe = recipeFlags(o);
      const n = o.limit === undefined ? undefined : intFlag('limit', o.limit, { min: 1 });
      const read = { allowNonfinite: o.allowNonfinite };
      const model = await openModel({ file, ...o }, { backend: o.backend, seed, maxBatch: Math.max(batchSize, 256) });
      // a resumed run keeps its normalisation and classes
      const all = dataFor(model, o, o.resume ? { file: o.resume, info: weightsInfo(o.resume, read) } : undefined);
      const data = limit(all, n);
      if (!o.json) process.stdout.write(dataLine(data));
      // the progress bar redraws one stderr line; stdout keeps only the results, so it can be redirected
      const bar = redraws(process.stderr) && !o.json ? (await import('./progress.js')).trainingProgress(epochs) : undefined;
      const runLog = o.save ? besideCheckpoint(o.save, 'log.jsonl') : undefined;
      const r = await train(model, data, {
        epochs,
        batchSize,
        seed,
        ...sgd,
        save: o.save,
        resume: o.resume,
        ...recipe,
        read,
        log: (line) => {
          if (o.json) return;
          if (bar) bar.line(line);
          else process.stdout.write(line + '\n');
        },
        onEpoch: bar ? (e, loss, stats) => bar.epoch(e, loss, stats) : undefined,
        ...(runLog && { runLog: { file: runLog, run: { backend: o.backend, ...(o.args && { args: o.args }) } } }),
      });
      bar?.stop();
      const curves = runLog ? await drawCurves(runLog) : [];
      const ips = (r.losses.length * r.images) / r.seconds;
      if (o.json) {
        const { losses, seconds, trainAccuracy, valAccuracy } = r;
        const run = {
          model: model.graph.name,
          backend: o.backend,
          device: model.device ?? null,
          images: r.images,
          valImages: r.valImages ?? null,
        };
        const json = { ...run, epochs: losses.length, losses, seconds, imagesPerSecond: ips, trainAccuracy, valAccuracy };
        const saved = { saved: r.saved?.file ?? null, savedEpoch: r.saved?.epoch ?? null, log: runLog ?? null, curves };
        const early = { stoppedEpoch: r.stoppedEpoch ?? null, best: r.best ?? null };
        process.stdout.write(JSON.stringify({ ...json, ...saved, ...early }, null, 2) + '\n');
        return;
      }
      const on = model.device ? `, ${model.device}` : '';
      const heldOut = typeof recipe.val === 'number' ? ` (${r.valImages} held out for validation)` : '';
      process.stdout.write(
        `Trained ${r.losses.length} epochs on ${r.images} images${heldOut} in ${r.seconds.toFixed(2)} s (${Math.round(ips)} img/s, backend ${o.backend}${on})\n`,
      );
      process.stdout.write(accuracyLines({ n: r.images, accuracy: r.trainAccuracy }, { n: data.val.n, accuracy: r.valAccuracy }));
      if (r.best)
        process.stdout.write(
          `Best validation epoch ${r.best.epoch}: loss ${r.best.valLoss}, accuracy ${r.best.valAccuracy.toFixed(4)}${r.best.file ? `, saved to ${r.best.file}` : ''}\n`,
        );
      if (r.saved)
        process.stdout.write(
          `Saved ${r.saved.file} (epoch ${r.saved.epoch})${runLog ? `, its log ${runLog} and curves ${curves.join(', ')}` : ''}\n`,
        );
    });

  dataOptions(
    modelOptions(
      example(
        program
          .command('eval <model.ts>')
          .description('accuracy of saved weights on the train and val splits, per class, and the confusion matrix'),
        'gen eval model.ts --weights runs/net.safetensors',
        'gen eval model.ts --weights runs/lenet.safetensors --data fashion-mnist:/usr/share/dataset-fashion-mnist --json',
      ),
    ),
    'data to evaluate on',
  )
    .requiredOption('--weights <file>', 'checkpoint, safetensors state_dict or PyTorch .pt')
    .option(...backendOpt)
    .option('--json', 'print JSON: accuracy, per-class accuracy and confusion matrix of both splits')
    .option(...ALLOW_NONFINITE)
    .action(
      async (
        file: string,
        o: ModelOptions & DataCli & { weights: string; backend: BackendName; json?: boolean; allowNonfinite?: boolean },
      ) => {
        const model = await openModel({ file, ...o }, { backend: o.backend });
        const data = dataFor(model, o, { file: o.weights, info: loadWeights(model, o.weights, { allowNonfinite: o.allowNonfinite }) });
        const r = evaluateReport(model, data);
        if (o.json) process.stdout.write(json({ data: data.source, ...r }));
        else process.stdout.write(dataLine(data) + reportText(r));
      },
    );

  dataOptions(
    modelOptions(
      example(
        program.command('predict <model.ts> <images...>').description('class and probabilities for PNG/JPEG images'),
        'gen predict model.ts --weights runs/net.safetensors bird.png airplane.jpg',
        'gen predict model.ts --weights runs/net.safetensors --top 3 bird.png',
      ),
    ),
    'where to take the normalisation and class names from when the weights carry none',
  )
    .requiredOption('--weights <file>', 'checkpoint (holds the normalisation and class names) or state_dict')
    .option(...backendOpt)
    .option('--top <k>', 'the k most probable classes of each image, with their probabilities')
    .option('--json', 'print JSON')
    .option(...ALLOW_NONFINITE)
    .action(
      async (
        file: string,
        images: string[],
        o: ModelOptions & DataCli & { weights: string; backend: BackendName; top?: string; json?: boolean; allowNonfinite?: boolean },
      ) => {
        const top = o.top === undefined ? undefined : intFlag('top', o.top, { min: 1 });
        const model = await openModel({ file, ...o }, { backend: o.backend });
        let info = loadWeights(model, o.weights, { allowNonfinite: o.allowNonfinite });
        if (!info.normalization || !info.classes) {
          const d = dataFor(model, o, { file: o.weights, info });
          const missing = [!info.normalization && 'normalisation', !info.classes && 'class names'].filter(Boolean).join(' or ');
          process.stderr.write(`${o.weights} carries no ${missing}: using those of ${d.source}\n`);
          info = { normalization: d.normalization, classes: d.classes };
        }
        const preds = predict(model, images, info, { top });
        if (o.json) process.stdout.write(json(preds));
        else for (const p of preds) process.stdout.write(predictionLine(p, top !== undefined) + '\n');
      },
    );
}

/** runs/net.curves.svg and .png from the run's log (the charting libraries load only here). */
async function drawCurves(log: string): Promise<string[]> {
  const [{ readRunLog }, { curvesSpec, vegaLiteSvg }, { writeFigure }] = await Promise.all([
    import('../train/log.js'),
    import('../viz/charts.js'),
    import('../viz/render.js'),
  ]);
  const svg = await vegaLiteSvg(curvesSpec(readRunLog(log)));
  const files = ['svg', 'png'].map((ext) => besideCheckpoint(log.replace(/\.log\.jsonl$/, ''), `curves.${ext}`));
  for (const f of files) await writeFigure(f, svg);
  return files;
}

/** `file: class (p0, p1, …)`, or with --top the ranked classes and their probabilities. */
function predictionLine(p: Prediction, ranked: boolean): string {
  if (ranked) return `${p.file}: ${p.top.map((t) => `${t.className} ${t.probability.toFixed(3)}`).join(', ')}`;
  return `${p.file}: ${p.className} (${p.probabilities.map((v) => v.toFixed(3)).join(', ')})`;
}
