// The training losses, written once: cross-entropy (with label smoothing, as
// nn.CrossEntropyLoss) on logits, and the negative log-likelihood (nn.NLLLoss)
// on log-probabilities the model computed itself. The per-class formulas are
// written over Arith: the interpreter evaluates them, the C++ and CUDA loss
// kernels print them.
import { cDoubleArith, numberArith, type Arith } from './expr.js';

export type LossOptions = { kind: 'cross_entropy'; labelSmoothing?: number } | { kind: 'nll' };

export function checkLoss(o: LossOptions): LossOptions {
  if (o.kind === 'nll') return o;
  if (o.kind !== 'cross_entropy') throw new Error(`unknown loss '${(o as { kind: string }).kind}': use cross_entropy or nll`);
  const s = o.labelSmoothing ?? 0;
  if (!(typeof s === 'number' && s >= 0 && s <= 1)) throw new Error(`labelSmoothing must be in [0, 1], got ${s}`);
  return { kind: 'cross_entropy', labelSmoothing: s };
}

function checkLabel(y: number, b: number, K: number): void {
  if (!Number.isInteger(y) || y < 0 || y >= K) throw new Error(`label ${b} is ${y}; expected a class index in 0..${K - 1}`);
}

/** The target probability of class k: (1 − ε)·[k = label] + ε/K (plain cross-entropy: ε = 0). */
export function ceTarget<T>(o: Arith<T>, isLabel: T, eps: T, K: T): T {
  return o.add(o.select(isLabel, o.sub(o.lit(1), eps), o.lit(0)), o.div(eps, K));
}

/** One class's share of a sample's cross-entropy, q·(logsumexp − z_k), and its gradient (p_k − q)/B. */
export function ceTerm<T>(o: Arith<T>, lse: T, z: T, q: T): T {
  return o.mul(q, o.sub(lse, z));
}

export function ceGrad<T>(o: Arith<T>, p: T, q: T, B: T): T {
  return o.div(o.sub(p, q), B);
}

/** NLL: the sample's loss is −out[label]; d loss / d out_k = −[k = label]/B. */
export function nllGrad<T>(o: Arith<T>, isLabel: T, B: T): T {
  return o.select(isLabel, o.neg(o.div(o.lit(1), B)), o.lit(0));
}

/** C statements (double precision) for class k of sample b: `term` to add to the loss sum, `grad` d loss / d z_k. */
export function lossC(v: { z: string; isLabel: string; lse: string; p: string; eps: string; K: string; B: string }): {
  ce: { term: string; grad: string };
  nllGrad: string;
} {
  const q = ceTarget(cDoubleArith, v.isLabel, v.eps, v.K);
  return {
    ce: { term: ceTerm(cDoubleArith, v.lse, v.z, q), grad: ceGrad(cDoubleArith, v.p, q, v.B) },
    nllGrad: nllGrad(cDoubleArith, v.isLabel, v.B),
  };
}

/**
 * Mean loss over the batch and its gradient d loss / d out, out [B, K], labels [B] in 0..K−1.
 *   cross-entropy with smoothing ε: target q = (1 − ε)·onehot + ε/K,
 *     loss = mean_b( Σ_k q_k (logsumexp(z) − z_k) ),  dz = (softmax(z) − q) / B
 *   nll: loss = −mean_b out[b, label],  dout = −onehot / B
 */
export function crossEntropy(
  out: ArrayLike<number>,
  labels: ArrayLike<number>,
  B: number,
  K: number,
  o: LossOptions = { kind: 'cross_entropy' },
): { loss: number; dlogits: Float64Array } {
  const d = new Float64Array(B * K);
  let total = 0;
  if (labels.length !== B) throw new Error(`${labels.length} labels for a batch of ${B}`);
  const n = numberArith;
  for (let b = 0; b < B; b++) {
    const y = labels[b];
    checkLabel(y, b, K);
    if (o.kind === 'nll') {
      total -= out[b * K + y];
      for (let k = 0; k < K; k++) d[b * K + k] = nllGrad(n, k === y ? 1 : 0, B);
      continue;
    }
    const eps = o.labelSmoothing ?? 0;
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, out[b * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(out[b * K + k] - m);
    const lse = m + Math.log(sum);
    for (let k = 0; k < K; k++) {
      const q = ceTarget(n, k === y ? 1 : 0, eps, K);
      total += ceTerm(n, lse, out[b * K + k], q);
      d[b * K + k] = ceGrad(n, Math.exp(out[b * K + k] - lse), q, B);
    }
  }
  return { loss: total / B, dlogits: d };
}
