// The training losses, written once: cross-entropy (with label smoothing, as
// nn.CrossEntropyLoss) on logits, and the negative log-likelihood (nn.NLLLoss)
// on log-probabilities the model computed itself.

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

/**
 * Mean loss over the batch and its gradient d loss / d out, out [B, K], labels [B] in 0..K−1.
 *   cross-entropy with smoothing ε: target q = (1 − ε)·onehot + ε/K,
 *     loss = mean_b( logsumexp(z) − Σ_k q_k z_k ),  dz = (softmax(z) − q) / B
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
  for (let b = 0; b < B; b++) {
    const y = labels[b];
    checkLabel(y, b, K);
    if (o.kind === 'nll') {
      total -= out[b * K + y];
      d[b * K + y] = -1 / B;
      continue;
    }
    const eps = o.labelSmoothing ?? 0;
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, out[b * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(out[b * K + k] - m);
    const lse = m + Math.log(sum);
    for (let k = 0; k < K; k++) {
      const q = (k === y ? 1 - eps : 0) + eps / K;
      total += q * (lse - out[b * K + k]);
      d[b * K + k] = (Math.exp(out[b * K + k] - m) / sum - q) / B;
    }
  }
  return { loss: total / B, dlogits: d };
}
