// The training recipes end to end: Adam/AdamW/Nesterov with schedules per step
// through the one-call-per-epoch native loops (the golden cases step one batch
// at a time), exact resume of Adam state, and the errors a user can cause.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { manualSeed } from 'tensorkiln';
import { NetDropout } from '../models/book.js';
import { openModule } from '../src/api/open.js';
import { cifar2Data, type ImageData } from '../src/api/data.js';
import { train, type TrainOptions } from '../src/api/workflow.js';
import { readRunLog } from '../src/train/log.js';
import { makeSchedule, parseSchedule, scheduleUsesLength } from '../src/train/schedule.js';
import { optimizerFlags } from '../src/cli/flags.js';

const outDir = path.join(os.tmpdir(), 'tensorkiln-test-packages');

function small(n: number): ImageData {
  const d = cifar2Data();
  const cut = (s: ImageData['train']) => ({ ...s, n, x: s.x.slice(0, n * 3072), y: s.y.slice(0, n) });
  return { ...d, train: cut(d.train), val: cut(d.val) };
}

async function fresh(backend: 'cpu' | 'interp' | 'cuda-emu') {
  manualSeed(11);
  return openModule(new NetDropout({ nChans1: 8 }), { backend, seed: 3, outDir, maxBatch: 64 });
}

const adamw: Omit<TrainOptions, 'epochs'> = {
  batchSize: 32,
  seed: 5,
  lr: 2e-3,
  optimizer: 'adamw',
  betas: [0.85, 0.99],
  eps: 1e-6,
  weightDecay: 1e-2,
  schedule: { schedule: { kind: 'cosine' }, warmup: { iters: 3 }, interval: 'step' },
};
const onecycle: Omit<TrainOptions, 'epochs'> = {
  batchSize: 32,
  seed: 5,
  lr: 5e-2,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  schedule: { schedule: { kind: 'onecycle' }, interval: 'step' },
};

describe('training recipes', () => {
  const data = small(160);

  it.each([
    ['AdamW, warm-up + cosine per step', adamw],
    ['Nesterov SGD, one-cycle (lr and momentum per step)', onecycle],
  ])('%s: the CPU epoch loop trains like the interpreter', async (_, o) => {
    const c = await train(await fresh('cpu'), data, { ...o, epochs: 2 });
    const i = await train(await fresh('interp'), data, { ...o, epochs: 2 });
    for (let e = 0; e < 2; e++) expect(Math.abs(c.losses[e] - i.losses[e]), `epoch ${e + 1}`).toBeLessThan(1e-4);
  });

  it('an AdamW + schedule run resumed from its checkpoint equals the uninterrupted one, bit for bit; the log holds each epoch’s lr', async () => {
    const full = await fresh('cpu');
    const a = await train(full, data, { ...adamw, epochs: 3 });
    const ck = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-recipes-')), 'ck.safetensors');
    const runLog = { file: ck.replace('.safetensors', '.log.jsonl'), run: {} };
    // the same 3-epoch run (its schedule spans 3 epochs), interrupted after epoch 2
    const stop = (e: number) => {
      if (e === 2) throw new Error('interrupted');
    };
    await expect(train(await fresh('cpu'), data, { ...adamw, epochs: 3, save: ck, runLog, onEpoch: stop })).rejects.toThrow('interrupted');
    const resumed = await fresh('cpu');
    const b = await train(resumed, data, { ...adamw, epochs: 3, resume: ck, save: ck, runLog });
    expect(b.losses).toEqual([a.losses[2]]);
    const sb = resumed.stateDict();
    for (const [k, t] of full.stateDict()) expect(sb.get(k)!.data, k).toEqual(t.data);
    // 5 steps an epoch, 15 in the run: warm-up over 3, cosine over 12; the log gives each epoch's last step
    const lr = makeSchedule(adamw.schedule!, adamw.lr, 15);
    const log = readRunLog(runLog.file);
    expect(log.epochs.map((e) => e.lr)).toEqual([4, 9, 14].map((k) => lr(k).lr));
    expect(log.run.options).toMatchObject({ optimizer: 'adamw', beta1: 0.85, schedule: 'cosine (per step, warm-up 3)' });
    // its cosine spans the 3 epochs: resuming with another --epochs would bend the curve, so it is refused, the checkpoint kept
    const before = fs.readFileSync(ck);
    await expect(train(await fresh('cpu'), data, { ...adamw, epochs: 5, resume: ck, save: ck })).rejects.toThrow(
      /schedule spanning --epochs 3 .*resume it with --epochs 3/,
    );
    expect(fs.readFileSync(ck).equals(before)).toBe(true);
    // which schedules take their length from the run (a warm-up only shifts the main one)
    expect(scheduleUsesLength({ schedule: { kind: 'cosine', tMax: 9 } })).toBe(false);
    expect(scheduleUsesLength({ schedule: { kind: 'step', stepSize: 2 }, warmup: { iters: 3 } })).toBe(false);
    expect(scheduleUsesLength({ schedule: { kind: 'onecycle' } })).toBe(true);
    expect(makeSchedule({ schedule: { kind: 'step', stepSize: 2 }, warmup: { iters: 3 } }, 1, 10)(7).lr).toBe(
      makeSchedule({ schedule: { kind: 'step', stepSize: 2 }, warmup: { iters: 3 } }, 1, 50)(7).lr,
    );
  });

  it(
    'the CUDA kernels (emulated) run the same recipe: AdamW per-step schedule, then one-cycle Nesterov',
    { timeout: 1_200_000 },
    async () => {
      const d = small(64);
      for (const o of [adamw, onecycle]) {
        const c = await train(await fresh('cuda-emu'), d, { ...o, epochs: 1 });
        const i = await train(await fresh('interp'), d, { ...o, epochs: 1 });
        expect(Math.abs(c.losses[0] - i.losses[0])).toBeLessThan(1e-4);
      }
    },
  );

  it('switching optimizers over kept state is an error on every backend; resetOptimizer allows it', async () => {
    const d = small(32);
    for (const backend of ['interp', 'cpu'] as const) {
      const m = await fresh(backend);
      const x = d.train.x.subarray(0, 8 * 3072);
      const y = d.train.y.subarray(0, 8);
      // an SGD option given to Adam is refused, not ignored
      expect(() => m.trainStep(x, y, 8, { lr: 1e-3, optimizer: 'adam', momentum: 0.9 }), backend).toThrow(/SGD options/);
      m.trainStep(x, y, 8, { lr: 1e-3, optimizer: 'adam' });
      expect(() => m.trainStep(x, y, 8, { lr: 1e-2, momentum: 0.9 }), backend).toThrow(/Adam moments|Adam buffers|holds Adam/);
      m.loadTrainingState(new Map([['step', m.trainingState().get('step')!]]));
      expect(() => m.trainStep(x, y, 8, { lr: 1e-2, momentum: 0.9 })).not.toThrow();
    }
  });
});

describe('schedules', () => {
  it('closed forms of StepLR, MultiStepLR and LinearLR, hand-computed', () => {
    const at = (spec: string, k: number, length = 10) => makeSchedule({ schedule: parseSchedule(spec) }, 0.1, length)(k).lr;
    expect([0, 2, 3, 6].map((k) => at('step:3:0.5', k))).toEqual([0.1, 0.1, 0.05, 0.025]);
    expect([0, 4, 5, 7, 8].map((k) => at('multistep:5,8', k))).toEqual([0.1, 0.1, 0.1 * 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1]);
    expect(at('linear:0.5:1:4', 2)).toBeCloseTo(0.075, 15);
    expect(at('cosine', 5)).toBeCloseTo(0.05, 15);
    expect(at('cosine:10:0.01', 10)).toBeCloseTo(0.01, 15);
  });

  it('rejects malformed specs and a one-cycle run longer than its cycle', () => {
    expect(() => parseSchedule('cosine:x')).toThrow(/T_max must be a number/);
    expect(() => parseSchedule('warm')).toThrow(/unknown schedule 'warm'/);
    expect(() => parseSchedule('step')).toThrow(/needs a step size/);
    expect(() => makeSchedule({ schedule: parseSchedule('multistep:5,3') }, 0.1, 10)).toThrow(/increasing/);
    expect(() => makeSchedule({ schedule: { kind: 'onecycle', totalSteps: 4 } }, 0.1, 4)(4)).toThrow(/4 steps asked for step 5/);
  });

  it('gen train flags: Adam flags on SGD, Nesterov without momentum, bad betas and intervals are named', () => {
    const base = {
      lr: '0.01',
      optimizer: 'sgd',
      momentum: '0',
      weightDecay: '0',
      l1: '0',
      l2: '0',
      labelSmoothing: '0',
    };
    expect(() => optimizerFlags({ ...base, betas: '0.9,0.99' })).toThrow(/--betas and --eps are Adam\/AdamW flags/);
    expect(() => optimizerFlags({ ...base, nesterov: true })).toThrow(/--nesterov needs a --momentum/);
    expect(() => optimizerFlags({ ...base, optimizer: 'adam', betas: '0.9' })).toThrow(/two numbers/);
    expect(() => optimizerFlags({ ...base, optimizer: 'adam', betas: '0.9,1' })).toThrow(/\[0, 1\)/);
    expect(() => optimizerFlags({ ...base, optimizer: 'adam', momentum: '0.9' })).toThrow(/SGD flags/);
    expect(() => optimizerFlags({ ...base, optimizer: 'rmsprop' })).toThrow(/--optimizer must be one of sgd, adam, adamw/);
    expect(() => optimizerFlags({ ...base, schedule: 'cosine', scheduleInterval: 'batch' })).toThrow(/--schedule-interval must be/);
    expect(() => optimizerFlags({ ...base, scheduleInterval: 'step' })).toThrow(/applies to --schedule or --warmup/);
    expect(optimizerFlags({ ...base, optimizer: 'adamw', schedule: 'cosine', warmup: '2', labelSmoothing: '0.1' })).toEqual({
      lr: 0.01,
      optimizer: 'adamw',
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
      l1: 0,
      l2: 0,
      loss: { kind: 'cross_entropy', labelSmoothing: 0.1 },
      schedule: { schedule: { kind: 'cosine', tMax: undefined, etaMin: undefined }, interval: 'epoch', warmup: { iters: 2 } },
    });
  });
});
