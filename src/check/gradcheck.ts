// Finite-difference gradient checks of the interpreter's backward, in float64.
// The scalar checked is L = Σ r·logits for a fixed random r, so one backward
// with dlogits = r gives every analytic gradient; each checked element is then
// perturbed by ±eps and L recomputed with two forwards (central difference).
import type { Interpreter } from '../interp/interpreter.js';
import { Rng } from '../util/rng.js';

export interface GradcheckOptions {
  /** run forward in train mode (BatchNorm batch statistics, dropout masks); default true */
  train?: boolean;
  /** dropout seed of every forward (masks stay fixed across perturbations) */
  dropoutSeed?: number;
  /** perturbation; default 1e-6 */
  eps?: number;
  /** at most this many elements checked per tensor, chosen at random; default 24 */
  samples?: number;
  /** seed of r and of the element choice */
  seed?: number;
  /** an element passes when |analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|); defaults 1e-7, 1e-5 */
  atol?: number;
  rtol?: number;
  /** also check the gradient w.r.t. the input, reported as 'input'; default true */
  input?: boolean;
}

export interface GradcheckResult {
  /** canonical parameter name, or 'input' */
  name: string;
  checked: number;
  worstAbs: number;
  /** the element with the largest error relative to its allowance */
  worst: { index: number; analytic: number; numeric: number } | null;
  pass: boolean;
}

/**
 * Checks every parameter's gradient (and the input's) for input x [batch, C, H, W].
 * The interpreter's state (train-mode forwards move BatchNorm's buffers) is as before afterwards.
 */
export function gradcheck(interp: Interpreter, x: Float64Array, batch: number, opts: GradcheckOptions = {}): GradcheckResult[] {
  // float64 copies, restored in place (stateDict() would round to float32)
  const values = new Map([...interp.values].map(([k, v]) => [k, v.slice()]));
  const counters = new Map(interp.counters);
  try {
    return check(interp, x, batch, opts);
  } finally {
    for (const [k, v] of values) interp.values.get(k)!.set(v);
    for (const [k, v] of counters) interp.counters.set(k, v);
  }
}

function check(interp: Interpreter, x: Float64Array, batch: number, opts: GradcheckOptions): GradcheckResult[] {
  const o = { train: true, dropoutSeed: 0, eps: 1e-6, samples: 24, seed: 1, atol: 1e-7, rtol: 1e-5, input: true, ...opts };
  const rng = new Rng(o.seed);
  const fwd = { train: o.train, seed: o.dropoutSeed };
  const r = interp.forward(x, batch, fwd).map(() => rng.normal()); // this forward is the one backward reads
  const objective = () => interp.forward(x, batch, fwd).reduce((s, v, i) => s + v * r[i], 0);
  const grads = interp.backward(r, { inputGrad: o.input });
  const tensors: [string, Float64Array, Float64Array][] = [...grads].map(([name, g]) => [name, interp.values.get(name)!, g]);
  if (o.input) tensors.push(['input', x, interp.inputGrad!]);

  return tensors.map(([name, values, analytic]) => {
    const picks = values.length <= o.samples ? [...values.keys()] : [...rng.permutation(values.length).subarray(0, o.samples)];
    let worstAbs = 0;
    let worstRatio = -1;
    let worst: GradcheckResult['worst'] = null;
    for (const i of picks) {
      const v = values[i];
      values[i] = v + o.eps;
      const plus = objective();
      values[i] = v - o.eps;
      const minus = objective();
      values[i] = v;
      const numeric = (plus - minus) / (2 * o.eps);
      const err = Math.abs(analytic[i] - numeric);
      const ratio = Number.isNaN(err) ? Infinity : err / (o.atol + o.rtol * Math.max(Math.abs(analytic[i]), Math.abs(numeric)));
      worstAbs = Math.max(worstAbs, err);
      if (ratio > worstRatio) {
        worstRatio = ratio;
        worst = { index: i, analytic: analytic[i], numeric };
      }
    }
    return { name, checked: picks.length, worstAbs, worst, pass: worstRatio <= 1 };
  });
}
