// Small helpers shared by the op files: option checks and window geometry.
import { callerSource } from '../graph/source.js';

export type Pair = number | [number, number];

/** A size option as [h, w]; problem is '' when valid (integers >= min), else what is wrong. */
export function pairOf(v: Pair, what: string, min: number): { value: [number, number]; problem: string } {
  const value: [number, number] = Array.isArray(v) ? v : [v, v];
  const ok = value.length === 2 && value.every((n) => Number.isInteger(n) && n >= min);
  return { value, problem: ok ? '' : `${what} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}` };
}

/**
 * Refuses options a layer does not know or does not implement: an ignored
 * option builds a different model than the user wrote (a dropped `groups`
 * gives a dense conv), which is worse than an error.
 */
export function checkOptions(layer: string, options: object, known: Record<string, (v: unknown) => boolean>): void {
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    const ok = Object.hasOwn(known, k) ? known[k](v) : false;
    if (!ok) {
      const what = Object.hasOwn(known, k) ? `${k}: ${JSON.stringify(v)} is not supported` : `unknown option '${k}'`;
      throw new Error(`${layer} at ${callerSource()}: ${what} (options: ${Object.keys(known).join(', ')})`);
    }
  }
}

export const anyValue = () => true;

/** Output size of a window op along one axis (floor mode). */
export function windowOut(inSize: number, k: number, stride: number, pad: number, dilation = 1): number {
  return Math.floor((inSize + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;
}

/**
 * The output positions [lo, hi) whose input coordinate o·stride − pad + k
 * falls inside [0, inSize): the rest read zero padding. `k` is the tap's offset (k·dilation).
 */
export function validRange(k: number, stride: number, pad: number, inSize: number, outSize: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - k) / stride));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + pad - k) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

export function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}
