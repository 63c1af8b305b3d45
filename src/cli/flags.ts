// Numeric command-line flags, parsed strictly and in one place: plain decimal
// only (no hex, octal, binary, "Infinity" or blanks, which Number() would take),
// each checked against its range, every error naming the flag and the text given.
import { OPTIMIZERS, type OptimizerKind, type StepOptions } from '../train/rules.js';
import { parseSchedule, type ScheduleOptions } from '../train/schedule.js';

export interface IntRange {
  min?: number;
  max?: number;
}

const DECIMAL_INT = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** Largest finite float32: a learning rate above it becomes Infinity in the kernels. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** "a non-negative integer", "a positive integer", "an integer in [1, 64]". */
function intKind(r: IntRange): string {
  if (r.min !== undefined && r.max !== undefined) return `an integer in [${r.min}, ${r.max}]`;
  if (r.min === 0) return 'a non-negative integer';
  if (r.min === 1) return 'a positive integer';
  if (r.min !== undefined) return `an integer of at least ${r.min}`;
  if (r.max !== undefined) return `an integer of at most ${r.max}`;
  return 'an integer';
}

/** An integer flag: decimal digits, within [min, max] (default: any safe integer). */
export function intFlag(name: string, text: string, r: IntRange = {}): number {
  const v = Number(text);
  const want = `--${name} must be ${intKind(r)}`;
  if (!DECIMAL_INT.test(text.trim()) || !Number.isSafeInteger(v)) throw new Error(`${want}, got '${text}'`);
  if ((r.min !== undefined && v < r.min) || (r.max !== undefined && v > r.max)) throw new Error(`${want}, got ${text}`);
  return v;
}

export interface FloatRange {
  min?: number;
  /** exclusive lower bound (a learning rate of 0 trains nothing, but is allowed: min 0) */
  above?: number;
  max?: number;
}

/** A float flag used as a float32 in the kernels: decimal, finite as a float32, within the range. */
export function float32Flag(name: string, text: string, r: FloatRange = {}): number {
  const v = Number(text);
  if (!DECIMAL.test(text.trim()) || !Number.isFinite(v)) throw new Error(`--${name} must be a decimal number, got '${text}'`);
  if (!Number.isFinite(Math.fround(v)))
    throw new Error(`--${name} ${text} overflows a float32 (the largest is about 3.4e38), where the kernels compute`);
  const max = r.max ?? FLOAT32_MAX;
  if ((r.min !== undefined && v < r.min) || (r.above !== undefined && v <= r.above) || v > max) {
    const lo = r.above !== undefined ? `above ${r.above}` : r.min !== undefined ? (r.min === 0 ? 'non-negative' : `at least ${r.min}`) : '';
    const hi = r.max !== undefined ? `at most ${r.max}` : '';
    throw new Error(`--${name} must be ${[lo, hi].filter(Boolean).join(' and ')}, got ${text}`);
  }
  return v;
}

/** What gen train's optimizer flags hold (strings, as commander gives them). */
export interface OptimizerCli {
  lr: string;
  optimizer: string;
  momentum: string;
  nesterov?: boolean;
  betas?: string;
  eps?: string;
  weightDecay: string;
  l1: string;
  l2: string;
  labelSmoothing: string;
  schedule?: string;
  warmup?: string;
  scheduleInterval?: string;
}

/** torch.optim's ranges: a non-negative learning rate, momentum, betas in [0, 1), eps and weight decay; non-negative penalties. */
export function optimizerFlags(o: OptimizerCli): StepOptions & { schedule?: ScheduleOptions } {
  const optimizer = o.optimizer as OptimizerKind;
  if (!OPTIMIZERS.includes(optimizer)) throw new Error(`--optimizer must be one of ${OPTIMIZERS.join(', ')}, got '${o.optimizer}'`);
  const sgd = optimizer === 'sgd';
  const momentum = float32Flag('momentum', o.momentum, { min: 0 });
  if (!sgd && (momentum !== 0 || o.nesterov))
    throw new Error(`--momentum and --nesterov are SGD flags; --optimizer ${optimizer} takes --betas`);
  if (sgd && (o.betas !== undefined || o.eps !== undefined))
    throw new Error('--betas and --eps are Adam/AdamW flags (--optimizer adam or adamw)');
  if (o.nesterov && momentum === 0) throw new Error('--nesterov needs a --momentum above 0');
  const labelSmoothing = float32Flag('label-smoothing', o.labelSmoothing, { min: 0, max: 1 });
  const interval = o.scheduleInterval ?? 'epoch';
  if (interval !== 'step' && interval !== 'epoch') throw new Error(`--schedule-interval must be step or epoch, got '${interval}'`);
  if (o.scheduleInterval !== undefined && o.schedule === undefined && o.warmup === undefined)
    throw new Error('--schedule-interval applies to --schedule or --warmup; give one of them');
  const warmup = o.warmup === undefined ? undefined : { iters: intFlag('warmup', o.warmup, { min: 1 }) };
  const schedule: ScheduleOptions | undefined =
    o.schedule !== undefined || warmup ? { schedule: parseSchedule(o.schedule ?? 'constant'), interval, warmup } : undefined;
  return {
    lr: float32Flag('lr', o.lr, { min: 0 }),
    optimizer,
    ...(sgd
      ? { momentum, nesterov: !!o.nesterov }
      : { betas: betasFlag(o.betas ?? '0.9,0.999'), eps: float32Flag('eps', o.eps ?? '1e-8', { min: 0 }) }),
    weightDecay: float32Flag('weight-decay', o.weightDecay, { min: 0 }),
    l1: float32Flag('l1', o.l1, { min: 0 }),
    l2: float32Flag('l2', o.l2, { min: 0 }),
    ...(labelSmoothing > 0 && { loss: { kind: 'cross_entropy', labelSmoothing } }),
    ...(schedule && { schedule }),
  };
}

function betasFlag(text: string): [number, number] {
  const parts = text.split(',');
  if (parts.length !== 2) throw new Error(`--betas must be two numbers beta1,beta2 (e.g. 0.9,0.999), got '${text}'`);
  const [b1, b2] = parts.map((p, i) => float32Flag(`betas (beta${i + 1})`, p, { min: 0 }));
  if (b1 >= 1 || b2 >= 1) throw new Error(`--betas must each be in [0, 1), got '${text}'`);
  return [b1, b2];
}

/** A seed: an integer in [0, 2^32 - 1] (it seeds 32-bit generators). */
export function seedFlag(text: string): number {
  return intFlag('seed', text, { min: 0, max: 0xffffffff });
}
