// The optimiser and penalty math, written once over the abstract arithmetic of
// src/ops/expr.ts, so the interpreter runs it on numbers and the code
// generators print it as C++/CUDA.
// (DESIGN.md: "one definition of the math".)
import { cArith, cDoubleArith, type Arith } from '../ops/expr.js';
import { checkLoss, type LossOptions } from '../ops/loss.js';

/** torch.optim's SGD (with or without Nesterov), Adam (coupled L2 decay) and AdamW (decoupled decay). */
export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerKind = (typeof OPTIMIZERS)[number];

/** Hyper-parameters of one step; penalties are added to the loss (the book's training_loop_l2reg). */
export interface StepOptions {
  lr: number;
  /** default 'sgd' */
  optimizer?: OptimizerKind;
  /** SGD momentum (dampening 0) */
  momentum?: number;
  /** SGD only */
  nesterov?: boolean;
  /** Adam/AdamW (β1, β2), default (0.9, 0.999) */
  betas?: readonly [number, number];
  /** Adam/AdamW, default 1e-8 */
  eps?: number;
  /** SGD and Adam: added to the gradient (coupled); AdamW: p ← p·(1 − lr·wd) first */
  weightDecay?: number;
  /** λ of λ·Σ|p| added to the loss */
  l1?: number;
  /** λ of λ·Σp² added to the loss */
  l2?: number;
  /** the loss of the model's output (default: cross-entropy of logits) */
  loss?: LossOptions;
}

/** Per-epoch training: a schedule's learning rate (and momentum or β1) for each step. */
export interface EpochStepOptions extends StepOptions {
  lrSteps?: Float64Array;
  momentumSteps?: Float64Array;
}

/** The options of step i of an epoch: its scheduled lr and momentum (SGD) or β1 (Adam). */
export function stepOfEpoch(o: EpochStepOptions, i: number): StepOptions {
  const { lrSteps, momentumSteps, ...step } = o;
  if (lrSteps) step.lr = lrSteps[i];
  if (momentumSteps) {
    if ((step.optimizer ?? 'sgd') === 'sgd') step.momentum = momentumSteps[i];
    else step.betas = [momentumSteps[i], step.betas?.[1] ?? 0.999];
  }
  return step;
}

/** The options of a step as numbers (the C struct tk_sgd_options holds the same fields). */
export interface StepTerms<T> {
  lr: T;
  momentum: T;
  weightDecay: T;
  l1: T;
  l2: T;
  /** 1 for Nesterov momentum */
  nesterov: T;
  beta1: T;
  beta2: T;
  eps: T;
}

/** The scalars of one Adam/AdamW step, which depend on the step count t (PyTorch computes them in double). */
export interface AdamScalars<T> {
  /** lr / (1 − β1^t) */
  stepSize: T;
  /** √(1 − β2^t) */
  bc2Sqrt: T;
  oneMinusBeta1: T;
  oneMinusBeta2: T;
  /** AdamW's 1 − lr·wd */
  decay: T;
}

/** Gradient of the loss penalties for one element: l1·sign(p) + 2·l2·p. */
export function penaltyGrad<T>(o: Arith<T>, p: T, h: StepTerms<T>): T {
  return o.add(o.mul(h.l1, o.sign(p)), o.mul(o.mul(o.lit(2), h.l2), p));
}

/** Penalty contribution of one element to the loss: l1·|p| + l2·p². */
export function penaltyLoss<T>(o: Arith<T>, p: T, h: StepTerms<T>): T {
  return o.add(o.mul(h.l1, o.mul(o.sign(p), p)), o.mul(h.l2, o.mul(p, p)));
}

/**
 * torch.optim.SGD (dampening 0) for one element, given the loss gradient g
 * (penalties included). Weight decay applies to every parameter; the momentum
 * buffer starts as a copy of the first step's gradient; Nesterov steps along
 * d + momentum·buf instead of buf.
 */
export function sgdStep<T>(o: Arith<T>, p: T, g: T, buf: T, first: T, h: StepTerms<T>): { p: T; buf: T } {
  const d = o.add(g, o.mul(h.weightDecay, p));
  const b = o.select(first, d, o.add(o.mul(h.momentum, buf), d));
  const dir = o.select(h.nesterov, o.add(d, o.mul(h.momentum, b)), b);
  return { p: o.sub(p, o.mul(h.lr, dir)), buf: b };
}

/** Adam's step scalars for step t ≥ 1, given β1^t and β2^t. */
export function adamScalars<T>(o: Arith<T>, h: StepTerms<T>, beta1t: T, beta2t: T): AdamScalars<T> {
  const one = o.lit(1);
  return {
    stepSize: o.div(h.lr, o.sub(one, beta1t)),
    bc2Sqrt: o.sqrt(o.sub(one, beta2t)),
    oneMinusBeta1: o.sub(one, h.beta1),
    oneMinusBeta2: o.sub(one, h.beta2),
    decay: o.sub(one, o.mul(h.lr, h.weightDecay)),
  };
}

/**
 * torch.optim.Adam (decoupled 0: wd·p joins the gradient) or AdamW (decoupled 1:
 * p shrinks by 1 − lr·wd before the moments) for one element; m and v are
 * exp_avg and exp_avg_sq, both zero before the first step.
 */
export function adamStep<T>(o: Arith<T>, p: T, g: T, m: T, v: T, decoupled: T, h: StepTerms<T>, s: AdamScalars<T>): { p: T; m: T; v: T } {
  const gd = o.select(decoupled, g, o.add(g, o.mul(h.weightDecay, p)));
  const p0 = o.select(decoupled, o.mul(p, s.decay), p);
  const m1 = o.add(o.mul(m, h.beta1), o.mul(gd, s.oneMinusBeta1));
  const v1 = o.add(o.mul(v, h.beta2), o.mul(o.mul(gd, gd), s.oneMinusBeta2));
  const denom = o.add(o.div(o.sqrt(v1), s.bc2Sqrt), h.eps);
  return { p: o.sub(p0, o.mul(s.stepSize, o.div(m1, denom))), m: m1, v: v1 };
}

/**
 * Adam as C for a code generator: the step scalars in double from dlr, db1, db2, dwd, b1t, b2t
 * (into s.step_size, s.bc2_sqrt, s.omb1, s.omb2, s.decay, s.decoupled), and the update of one
 * element p, g with moments read as `mv`, `vv` and written to `M`, `V` (the parameter reads them back).
 */
export function adamView(h: StepTerms<string>, n: { mv: string; vv: string; M: string; V: string }) {
  const d = adamScalars(cDoubleArith, { ...h, lr: 'dlr', beta1: 'db1', beta2: 'db2', weightDecay: 'dwd' }, 'b1t', 'b2t');
  const s: AdamScalars<string> = {
    stepSize: 's.step_size',
    bc2Sqrt: 's.bc2_sqrt',
    oneMinusBeta1: 's.omb1',
    oneMinusBeta2: 's.omb2',
    decay: 's.decay',
  };
  const r = adamStep(cArith, 'p', 'g', n.mv, n.vv, 's.decoupled', h, s);
  return {
    adamStepSize: d.stepSize,
    adamBc2Sqrt: d.bc2Sqrt,
    adamOmb1: d.oneMinusBeta1,
    adamOmb2: d.oneMinusBeta2,
    adamDecay: d.decay,
    adamM: r.m,
    adamV: r.v,
    adamParam: r.p.split(r.m).join(n.M).split(r.v).join(n.V),
  };
}

/** The C enum value of each optimizer (TK_OPT_SGD, TK_OPT_ADAM, TK_OPT_ADAMW). */
export const optimizerCode = (k: OptimizerKind): number => OPTIMIZERS.indexOf(k);

/** Checks and completes a step's options; an error names the bad one. */
export function stepTerms(o: StepOptions): StepTerms<number> {
  const kind = o.optimizer ?? 'sgd';
  if (!OPTIMIZERS.includes(kind)) throw new Error(`optimizer must be one of ${OPTIMIZERS.join(', ')}, got '${String(kind)}'`);
  if (kind !== 'sgd' && (o.momentum || o.nesterov)) throw new Error(`momentum and nesterov are SGD options; ${kind} uses betas`);
  if (kind === 'sgd' && (o.betas !== undefined || o.eps !== undefined))
    throw new Error('betas and eps are Adam/AdamW options, not SGD ones');
  const [beta1, beta2] = o.betas ?? [0.9, 0.999];
  const h = {
    lr: o.lr,
    momentum: o.momentum ?? 0,
    weightDecay: o.weightDecay ?? 0,
    l1: o.l1 ?? 0,
    l2: o.l2 ?? 0,
    nesterov: o.nesterov ? 1 : 0,
    beta1,
    beta2,
    eps: o.eps ?? 1e-8,
  };
  for (const [k, v] of Object.entries(h))
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`training option ${k} must be a finite number, got ${v}`);
  if (o.nesterov && h.momentum <= 0) throw new Error('nesterov needs a momentum above 0 (as torch.optim.SGD)');
  for (const [k, v] of [
    ['beta1', beta1],
    ['beta2', beta2],
  ] as const)
    if (!(v >= 0 && v < 1)) throw new Error(`${k} must be in [0, 1), got ${v}`);
  if (!(h.eps >= 0)) throw new Error(`eps must be >= 0, got ${h.eps}`);
  if (o.loss) checkLoss(o.loss);
  return h;
}

/** Dropout seed of training step `step` (0-based) for a run seeded with `seed`: src/ops/hash.ts, printed for every backend. */
export { stepSeed } from '../ops/hash.js';
