// The optimiser and penalty math, written once over the abstract arithmetic of
// src/ops/expr.ts, so the interpreter runs it on numbers and the code
// generators print it as C++/CUDA.
// (DESIGN.md: "one definition of the math".)
import type { Arith } from '../ops/expr.js';
import { checkLoss, type LossOptions } from '../ops/loss.js';

/** Hyper-parameters of one SGD step; penalties are added to the loss (the book's training_loop_l2reg). */
export interface StepOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  /** λ of λ·Σ|p| added to the loss */
  l1?: number;
  /** λ of λ·Σp² added to the loss */
  l2?: number;
  /** the loss of the model's output (default: cross-entropy of logits) */
  loss?: LossOptions;
}

export interface StepTerms<T> {
  lr: T;
  momentum: T;
  weightDecay: T;
  l1: T;
  l2: T;
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
 * torch.optim.SGD (dampening 0, no Nesterov) for one element, given the loss
 * gradient g (penalties included). Weight decay applies to every parameter;
 * the momentum buffer starts as a copy of the first step's gradient.
 */
export function sgdStep<T>(o: Arith<T>, p: T, g: T, buf: T, first: T, h: StepTerms<T>): { p: T; buf: T } {
  const d = o.add(g, o.mul(h.weightDecay, p));
  const b = o.select(first, d, o.add(o.mul(h.momentum, buf), d));
  return { p: o.sub(p, o.mul(h.lr, b)), buf: b };
}

export function stepTerms(o: StepOptions): StepTerms<number> {
  const h = { lr: o.lr, momentum: o.momentum ?? 0, weightDecay: o.weightDecay ?? 0, l1: o.l1 ?? 0, l2: o.l2 ?? 0 };
  for (const [k, v] of Object.entries(h))
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`training option ${k} must be a finite number, got ${v}`);
  if (o.loss) checkLoss(o.loss);
  return h;
}

/** Dropout seed of training step `step` (0-based) for a run seeded with `seed`: src/ops/hash.ts, printed for every backend. */
export { stepSeed } from '../ops/hash.js';
