// Per-epoch validation, early stopping and the best checkpoint: the stopping rule on
// scripted validation losses, then the workflow on a real model (the CPU backend):
// where it stops, what the best checkpoint holds (evaluated again), and misuse.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetDropout } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { loadWeights, train, type TrainOptions } from '../src/api/workflow.js';
import { holdOut } from '../src/data/loader.js';
import { EarlyStop } from '../src/train/early-stop.js';
import { readRunLog } from '../src/train/log.js';
import { validate, type EpochStats } from '../src/train/loop.js';
import { crossEntropy } from '../src/ops/loss.js';

const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');
const stats = (valLoss: number, valAccuracy = 0): EpochStats => ({
  trainAccuracy: 0,
  images: 1,
  seconds: 1,
  lr: 0.1,
  valLoss,
  valAccuracy,
});

/** The epoch it stops after (undefined: never) and the best epoch, for scripted validation losses. */
function run(losses: number[], o: ConstructorParameters<typeof EarlyStop>[0], accuracy = false) {
  const es = new EarlyStop(o);
  for (let e = 1; e <= losses.length; e++) {
    const r = es.update(e, accuracy ? stats(0, losses[e - 1]) : stats(losses[e - 1]));
    if (r.stop) return { stop: e, best: es.state.bestEpoch };
  }
  return { stop: undefined, best: es.state.bestEpoch };
}

describe('early stopping rule (Keras EarlyStopping: better by more than minDelta, patience epochs)', () => {
  it('stops after patience epochs without a better validation loss', () => {
    expect(run([1.0, 0.8, 0.85, 0.79, 0.9, 0.95, 0.5], { patience: 2 })).toEqual({ stop: 6, best: 4 });
    expect(run([1.0, 0.8, 0.85, 0.79, 0.9, 0.95, 0.5], { patience: 3 })).toEqual({ stop: undefined, best: 7 });
    // 0.79 is not better than 0.8 by more than 0.05: the best stays epoch 2
    expect(run([1.0, 0.8, 0.85, 0.79, 0.9], { patience: 2, minDelta: 0.05 })).toEqual({ stop: 4, best: 2 });
    // equal is not better
    expect(run([0.5, 0.5, 0.5], { patience: 2 })).toEqual({ stop: 3, best: 1 });
    // without patience it only tracks the best (--save-best alone)
    expect(run([0.5, 0.6, 0.7, 0.8], {})).toEqual({ stop: undefined, best: 1 });
  });

  it('on accuracy, higher is better', () => {
    expect(run([0.5, 0.7, 0.65, 0.7, 0.69], { patience: 3, monitor: 'accuracy' }, true)).toEqual({ stop: 5, best: 2 });
  });

  it('refuses bad settings and epochs without validation', () => {
    expect(() => new EarlyStop({ patience: 0 })).toThrow(/patience must be a positive integer/);
    expect(() => new EarlyStop({ minDelta: -1 })).toThrow(/minDelta must be a non-negative/);
    expect(() => new EarlyStop({ monitor: 'lr' as 'loss' })).toThrow(/monitor must be/);
    expect(() => new EarlyStop({}).update(1, { trainAccuracy: 0, images: 1, seconds: 1, lr: 0.1 })).toThrow(/need a validation set/);
  });
});

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

async function fresh() {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend: 'cpu', seed: 3, outDir, maxBatch: 64 });
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tk-val-'));

describe('validation in the training workflow', () => {
  const data = small(160);
  const opts: TrainOptions = { epochs: 6, batchSize: 32, lr: 2e-2, momentum: 0.9, seed: 5 };

  it('holds out every (1/f)-th image of each class, and validates on it after each epoch', async () => {
    const s = holdOut(data.train, 0.25);
    expect(s.train.n + s.val.n).toBe(160);
    for (const c of [0, 1]) {
      const all = [...data.train.y].filter((y) => y === c).length;
      expect([...s.val.y].filter((y) => y === c).length).toBe(Math.floor(all * 0.25));
    }
    const seen: EpochStats[] = [];
    const model = await fresh();
    const r = await train(model, data, { ...opts, epochs: 2, val: 0.25, onEpoch: (_e, _l, st) => void seen.push(st) });
    expect(seen.map((st) => st.images)).toEqual([s.train.n, s.train.n]);
    // the last epoch's numbers are the model's now, on the held-out images (loss: mean cross-entropy)
    const again = validate(model, s.val);
    expect(seen[1].valLoss).toBe(again.valLoss);
    expect(seen[1].valAccuracy).toBe(again.valAccuracy);
    const logits = model.forward(s.val.x, s.val.n);
    expect(again.valLoss).toBeCloseTo(crossEntropy(logits, s.val.y, s.val.n, 2).loss, 6);
    expect(r.losses).toHaveLength(2);
  });

  it('stops at the epoch the rule says: lr 0 never improves, so epoch 1 stays best and it stops after 1 + patience', async () => {
    const lines: string[] = [];
    const r = await train(await fresh(), data, { ...opts, lr: 0, val: 'val', earlyStop: { patience: 2 }, log: (l) => lines.push(l) });
    expect(r.losses).toHaveLength(3);
    expect(r.stoppedEpoch).toBe(3);
    expect(r.best?.epoch).toBe(1);
    expect(lines.at(-1)).toMatch(/^Early stop after epoch 3: validation loss has not improved for 2 epochs \(best: epoch 1/);
    expect(lines[0]).toMatch(/Epoch 1, Training loss [\d.]+, Validation loss [\d.]+, accuracy [\d.]+$/);
  });

  it('stops where the rule applied to the epochs it saw says, and --save-best holds the best epoch (evaluated again)', async () => {
    const dir = tmp();
    const best = path.join(dir, 'best.safetensors');
    const save = path.join(dir, 'last.safetensors');
    const seen: EpochStats[] = [];
    const o: TrainOptions = { ...opts, lr: 8e-2, epochs: 12, val: 0.25, earlyStop: { patience: 2 }, saveBest: best, save };
    const runLog = { file: path.join(dir, 'last.log.jsonl'), run: {} };
    const r = await train(await fresh(), data, { ...o, runLog, onEpoch: (_e, _l, st) => void seen.push(st) });
    // the rule, replayed on the validation losses the run reported
    expect(r.stoppedEpoch).toBe(
      run(
        seen.map((s) => s.valLoss!),
        { patience: 2 },
      ).stop,
    );
    const bestEpoch = run(
      seen.map((s) => s.valLoss!),
      { patience: 2 },
    ).best;
    expect(r.best?.epoch).toBe(bestEpoch);
    expect(r.best?.valLoss).toBe(Math.min(...seen.map((s) => s.valLoss!)));
    // a case where it matters: it stopped early, and the best epoch is not the last one
    expect(r.stoppedEpoch).toBeLessThan(12);
    expect(r.best!.epoch).toBeLessThan(r.losses.length);
    // the file holds that epoch's weights: evaluating them gives its numbers
    const m = await fresh();
    loadWeights(m, best);
    const again = validate(m, holdOut(data.train, 0.25).val);
    expect(again.valLoss).toBe(r.best?.valLoss);
    expect(again.valAccuracy).toBe(r.best?.valAccuracy);
    loadWeights(m, save);
    expect(validate(m, holdOut(data.train, 0.25).val).valLoss).not.toBe(r.best?.valLoss);
    // and the run log has each epoch's validation
    const log = readRunLog(runLog.file);
    expect(log.epochs.map((e) => e.validation?.loss)).toEqual(seen.map((s) => s.valLoss));
    expect(log.epochs).toHaveLength(r.losses.length);
  });

  it('a run resumed from its checkpoint stops where the uninterrupted one does', async () => {
    const dir = tmp();
    const o: TrainOptions = { ...opts, lr: 8e-2, epochs: 12, val: 0.25, earlyStop: { patience: 2 } };
    const full = await train(await fresh(), data, o);
    expect(full.stoppedEpoch).toBeDefined();
    const ck = path.join(dir, 'ck.safetensors');
    const upTo = full.stoppedEpoch! - 1;
    await train(await fresh(), data, { ...o, epochs: upTo, save: ck });
    const b = await train(await fresh(), data, { ...o, resume: ck });
    expect(b.stoppedEpoch).toBe(full.stoppedEpoch);
    expect(b.losses).toEqual(full.losses.slice(upTo));
  });

  it('misuse is an error naming the option', async () => {
    const m = await fresh();
    await expect(train(m, data, { ...opts, earlyStop: { patience: 2 } })).rejects.toThrow(/early stopping needs a validation set/);
    await expect(train(m, data, { ...opts, saveBest: path.join(tmp(), 'b.safetensors') })).rejects.toThrow(
      /saveBest needs a validation set/,
    );
    await expect(train(m, data, { ...opts, val: 1 })).rejects.toThrow(/fraction must be in \(0, 1\)/);
    await expect(train(m, data, { ...opts, val: 0.001 })).rejects.toThrow(/the validation set is empty/);
    const f = path.join(tmp(), 'same.safetensors');
    await expect(train(m, data, { ...opts, val: 'val', save: f, saveBest: f })).rejects.toThrow(/same file/);
    await expect(train(m, data, { ...opts, val: 'val', earlyStop: { patience: 1.5 } })).rejects.toThrow(
      /patience must be a positive integer/,
    );
    // a resume must repeat the augmentation and validation it was trained with
    const ck = path.join(tmp(), 'ck.safetensors');
    await train(await fresh(), data, { ...opts, epochs: 1, val: 0.25, augment: { flip: true }, save: ck });
    await expect(train(await fresh(), data, { ...opts, val: 0.25, resume: ck })).rejects.toThrow(
      /--augment flip; resume it with the same \(got none\)/,
    );
    await expect(train(await fresh(), data, { ...opts, augment: { flip: true }, resume: ck })).rejects.toThrow(/--val 0\.25/);
  });
});
