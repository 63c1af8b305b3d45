// Looking inside a trained model through its input gradient: a saliency map
// (|∂loss/∂x|) and the sign-gradient attack of the book's exercise (FGSM for one
// step, iterated within an L∞ ball otherwise), both in eval mode and changing no weights.
import { normalize, type ChannelStats } from '../data/transforms.js';
import type { ImageShape } from '../data/dataset.js';
import { softmax } from '../train/loop.js';
import type { TrainableModel } from '../train/model.js';

/** max over channels of |d loss / d x| per pixel, [H·W], for the loss of class `label`. */
export async function saliency(model: TrainableModel, x: Float32Array, label: number): Promise<Float32Array> {
  const [C, H, W] = model.graph.inputShape;
  const { grad } = await model.inputGradient(x, Int32Array.of(label));
  const out = new Float32Array(H * W);
  for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[p] = Math.max(out[p], Math.abs(grad[c * H * W + p]));
  return out;
}

export interface AttackOptions {
  /** make the model answer this class (targeted); else move away from `label` */
  target?: number;
  /** the class to move away from when no target is given (the true or predicted class) */
  label: number;
  /** L∞ radius in pixel units of [0, 1], e.g. 8/255 */
  eps: number;
  /** sign-gradient steps (1: FGSM) */
  steps?: number;
  /** step size in pixel units (default 2.5·eps/steps, at least eps/steps) */
  alpha?: number;
}

export interface AttackResult {
  /** the adversarial image, CHW bytes (what a PNG of it holds) */
  bytes: Uint8Array;
  /** softmax of the original and of the adversarial bytes */
  before: number[];
  after: number[];
  /** the first step whose (rounded) image the model classifies as wanted, or null */
  fooledAt: number | null;
  /** largest change of any pixel, in [0, 1] units */
  linf: number;
}

/**
 * Iterated sign-gradient attack on image bytes: p ← clip(p ∓ α·sign(∂loss/∂p)) within
 * [p₀ − eps, p₀ + eps] ∩ [0, 1] (− toward a target's loss minimum, + away from the label's),
 * each step rounded to bytes, so the result is exactly what the returned image holds.
 */
export async function signGradientAttack(
  model: TrainableModel,
  bytes: Uint8Array,
  shape: ImageShape,
  normalization: ChannelStats,
  o: AttackOptions,
): Promise<AttackResult> {
  if (!(o.eps > 0 && o.eps <= 1)) throw new Error(`eps must be in (0, 1] (pixel units), got ${o.eps}`);
  const steps = o.steps ?? 10;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`steps must be a positive integer, got ${steps}`);
  const alpha = o.alpha ?? (steps === 1 ? o.eps : (2.5 * o.eps) / steps);
  const classes = model.graph.nodes[model.graph.output].shape[0];
  for (const k of [o.label, o.target].filter((v) => v !== undefined))
    if (!Number.isInteger(k) || k < 0 || k >= classes) throw new Error(`class ${k} is not one of the model's ${classes}`);
  const [C, H, W] = shape;
  const plane = H * W;
  const sign = o.target === undefined ? 1 : -1;
  const wanted = Int32Array.of(o.target ?? o.label);
  const probs = async (b: Uint8Array) => {
    model.eval();
    return [...softmax(model.forward(normalize(b, normalization, shape), 1), 1)];
  };
  const fooled = (p: number[]) => {
    const best = p.indexOf(Math.max(...p));
    return o.target === undefined ? best !== o.label : best === o.target;
  };
  const before = await probs(bytes);
  let cur = bytes.slice();
  let fooledAt: number | null = null;
  for (let s = 1; s <= steps; s++) {
    const { grad } = await model.inputGradient(normalize(cur, normalization, shape), wanted);
    const next = new Uint8Array(cur.length);
    for (let c = 0; c < C; c++)
      for (let p = c * plane; p < (c + 1) * plane; p++) {
        // ∂loss/∂pixel = ∂loss/∂x / std[c]: the same sign
        const v = cur[p] / 255 + sign * alpha * Math.sign(grad[p]);
        const lo = Math.max(0, bytes[p] / 255 - o.eps);
        const hi = Math.min(1, bytes[p] / 255 + o.eps);
        // rounding stays inside the ball: its ends are rounded inward
        next[p] = Math.min(
          Math.floor(hi * 255 + 1e-9),
          Math.max(Math.ceil(lo * 255 - 1e-9), Math.round(Math.min(hi, Math.max(lo, v)) * 255)),
        );
      }
    cur = next;
    if (fooledAt === null && fooled(await probs(cur))) fooledAt = s;
  }
  let linf = 0;
  for (let i = 0; i < cur.length; i++) linf = Math.max(linf, Math.abs(cur[i] - bytes[i]) / 255);
  return { bytes: cur, before, after: await probs(cur), fooledAt, linf };
}
