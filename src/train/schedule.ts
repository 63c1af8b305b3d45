// Learning-rate schedules with torch.optim.lr_scheduler's semantics, as closed
// forms of the step (or epoch) index k = 0, 1, ...: the value PyTorch's
// optimizer holds for step k when the scheduler is stepped after every
// optimizer step (or every epoch). The training loop hands each step's value to
// the backend, so every backend runs the same numbers.

export type Schedule =
  | { kind: 'constant' }
  /** StepLR: lr·γ^⌊k/stepSize⌋ */
  | { kind: 'step'; stepSize: number; gamma?: number }
  /** MultiStepLR: lr·γ^(milestones passed) */
  | { kind: 'multistep'; milestones: number[]; gamma?: number }
  /** CosineAnnealingLR: ηmin + (lr − ηmin)(1 + cos(πk/T))/2; T defaults to the run's length (after any warm-up) */
  | { kind: 'cosine'; tMax?: number; etaMin?: number }
  /** LinearLR: lr·(start + (end − start)·min(k, n)/n) */
  | { kind: 'linear'; startFactor?: number; endFactor?: number; totalIters?: number }
  /** OneCycleLR (cos annealing, two phases); maxLr defaults to lr, totalSteps to the run's length */
  | {
      kind: 'onecycle';
      maxLr?: number;
      totalSteps?: number;
      pctStart?: number;
      divFactor?: number;
      finalDivFactor?: number;
      cycleMomentum?: boolean;
      baseMomentum?: number;
      maxMomentum?: number;
    };

export interface ScheduleOptions {
  schedule?: Schedule;
  /** SequentialLR(LinearLR(startFactor → 1 over `iters`), schedule, milestones=[iters]) */
  warmup?: { iters: number; startFactor?: number };
  /** what k counts (default 'epoch', as PyTorch's examples step once per epoch) */
  interval?: 'step' | 'epoch';
}

export interface ScheduledValue {
  lr: number;
  /** SGD momentum or Adam β1, when the schedule cycles it (OneCycleLR) */
  momentum?: number;
}

export type ScheduleFn = (k: number) => ScheduledValue;

const cosAnneal = (start: number, end: number, pct: number) => end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);

/**
 * Whether the schedule's values depend on the run's length: cosine without T, one-cycle without total steps
 * (a warm-up only shifts the main schedule, so it depends on the length exactly when the main one does).
 */
export function scheduleUsesLength(o: ScheduleOptions | undefined): boolean {
  const s = o?.schedule;
  return (s?.kind === 'cosine' && s.tMax === undefined) || (s?.kind === 'onecycle' && s.totalSteps === undefined);
}

/**
 * The schedule over a run of `length` steps or epochs (what defaults such as
 * cosine's T refer to), for base learning rate `lr`. An error names a bad option.
 */
export function makeSchedule(o: ScheduleOptions, lr: number, length: number): ScheduleFn {
  const w = o.warmup;
  const main = o.schedule ?? { kind: 'constant' };
  if (!w) return single(main, lr, length);
  positiveInt('warm-up iters', w.iters);
  const warm = single({ kind: 'linear', startFactor: w.startFactor ?? 1 / 3, endFactor: 1, totalIters: w.iters }, lr, w.iters);
  const rest = single(main, lr, Math.max(1, length - w.iters));
  // SequentialLR restarts the second scheduler at the milestone
  return (k) => (k < w.iters ? warm(k) : rest(k - w.iters));
}

function single(s: Schedule, lr: number, length: number): ScheduleFn {
  switch (s.kind) {
    case 'constant':
      return () => ({ lr });
    case 'step': {
      positiveInt('step size', s.stepSize);
      const gamma = factor('gamma', s.gamma ?? 0.1);
      return (k) => ({ lr: lr * gamma ** Math.floor(k / s.stepSize) });
    }
    case 'multistep': {
      const ms = s.milestones;
      if (!ms.length || ms.some((m, i) => !Number.isInteger(m) || m < 1 || (i > 0 && m <= ms[i - 1])))
        throw new Error(`multistep milestones must be increasing positive integers, got ${ms.join(',')}`);
      const gamma = factor('gamma', s.gamma ?? 0.1);
      return (k) => ({ lr: lr * gamma ** ms.filter((m) => m <= k).length });
    }
    case 'cosine': {
      const t = s.tMax ?? length;
      positiveInt('cosine T_max', t);
      const etaMin = s.etaMin ?? 0;
      if (!(etaMin >= 0)) throw new Error(`cosine eta_min must be >= 0, got ${etaMin}`);
      return (k) => ({ lr: etaMin + ((lr - etaMin) * (1 + Math.cos((Math.PI * k) / t))) / 2 });
    }
    case 'linear': {
      const a = factor('linear start factor', s.startFactor ?? 1 / 3);
      const b = factor('linear end factor', s.endFactor ?? 1);
      const n = s.totalIters ?? 5;
      positiveInt('linear total iters', n);
      return (k) => ({ lr: lr * (a + ((b - a) * Math.min(k, n)) / n) });
    }
    case 'onecycle':
      return oneCycle(s, lr, length);
    default: {
      const never: never = s;
      throw new Error(`unknown schedule ${JSON.stringify(never)}`);
    }
  }
}

function oneCycle(s: Extract<Schedule, { kind: 'onecycle' }>, lr: number, length: number): ScheduleFn {
  const total = s.totalSteps ?? length;
  positiveInt('one-cycle total steps', total);
  const maxLr = s.maxLr ?? lr;
  const pct = s.pctStart ?? 0.3;
  if (!(pct > 0 && pct < 1)) throw new Error(`one-cycle pct_start must be in (0, 1), got ${pct}`);
  const initial = maxLr / (s.divFactor ?? 25);
  const min = initial / (s.finalDivFactor ?? 1e4);
  const cycle = s.cycleMomentum ?? true;
  const mLo = s.baseMomentum ?? 0.85;
  const mHi = s.maxMomentum ?? 0.95;
  const phases = [
    { end: pct * total - 1, lr: [initial, maxLr], m: [mHi, mLo] },
    { end: total - 1, lr: [maxLr, min], m: [mLo, mHi] },
  ];
  return (k) => {
    if (k >= total) throw new Error(`one-cycle schedule of ${total} steps asked for step ${k + 1}: give it the run's length`);
    let start = 0;
    for (const [i, p] of phases.entries()) {
      if (k <= p.end || i === phases.length - 1) {
        const f = (k - start) / (p.end - start);
        return { lr: cosAnneal(p.lr[0], p.lr[1], f), ...(cycle && { momentum: cosAnneal(p.m[0], p.m[1], f) }) };
      }
      start = p.end;
    }
    throw new Error('unreachable');
  };
}

function positiveInt(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a positive integer, got ${v}`);
}

function factor(what: string, v: number): number {
  if (!(Number.isFinite(v) && v >= 0)) throw new Error(`${what} must be a finite number >= 0, got ${v}`);
  return v;
}

/** A schedule in its command-line form, with its warm-up and interval: 'cosine (per step, warm-up 5)'. */
export function describeSchedule(o: ScheduleOptions | undefined): string {
  const s = o?.schedule ?? { kind: 'constant' };
  const args = Object.entries(s)
    .filter(([k, v]) => k !== 'kind' && v !== undefined)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : v}`);
  const head = args.length ? `${s.kind}(${args.join(' ')})` : s.kind;
  const tail = [o?.interval === 'step' && 'per step', o?.warmup && `warm-up ${o.warmup.iters}`].filter(Boolean);
  return tail.length ? `${head} (${tail.join(', ')})` : head;
}

/**
 * A schedule from its command-line form: constant, step:SIZE[:GAMMA],
 * multistep:M1,M2[:GAMMA], cosine[:T_MAX[:ETA_MIN]], linear[:START[:END[:ITERS]]], onecycle[:MAX_LR].
 */
export function parseSchedule(text: string): Schedule {
  const [kind, ...args] = text.split(':');
  const num = (i: number, what: string): number | undefined => {
    if (args[i] === undefined || args[i] === '') return undefined;
    const v = Number(args[i]);
    if (!Number.isFinite(v)) throw new Error(`--schedule ${text}: ${what} must be a number, got '${args[i]}'`);
    return v;
  };
  const arity = (n: number) => {
    if (args.length > n) throw new Error(`--schedule ${text}: ${kind} takes at most ${n} values after its name`);
  };
  switch (kind) {
    case 'constant':
      arity(0);
      return { kind };
    case 'step': {
      arity(2);
      const stepSize = num(0, 'the step size');
      if (stepSize === undefined) throw new Error(`--schedule ${text}: step needs a step size (step:30 or step:30:0.1)`);
      return { kind, stepSize, gamma: num(1, 'gamma') };
    }
    case 'multistep': {
      arity(2);
      if (!args[0]) throw new Error(`--schedule ${text}: multistep needs milestones (multistep:100,150 or multistep:100,150:0.1)`);
      const milestones = args[0].split(',').map(Number);
      if (milestones.some((m) => !Number.isFinite(m))) throw new Error(`--schedule ${text}: milestones must be numbers`);
      return { kind, milestones, gamma: num(1, 'gamma') };
    }
    case 'cosine':
      arity(2);
      return { kind, tMax: num(0, 'T_max'), etaMin: num(1, 'eta_min') };
    case 'linear':
      arity(3);
      return { kind, startFactor: num(0, 'the start factor'), endFactor: num(1, 'the end factor'), totalIters: num(2, 'total iters') };
    case 'onecycle':
      arity(1);
      return { kind, maxLr: num(0, 'max_lr') };
    default:
      throw new Error(`--schedule: unknown schedule '${kind}' (constant, step, multistep, cosine, linear, onecycle)`);
  }
}
