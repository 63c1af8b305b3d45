// Comparing computed tensors with reference ones under a tolerance, with a
// one-line verdict per tensor (worst absolute and relative error, pass/fail).

/**
 * How close `got` must be to `ref`, per element i:
 *   elementwise: |got − ref| ≤ atol + rtol·|ref_i|
 *   tensor:      |got − ref| ≤ atol + rtol·max_j |ref_j|   (gradients: scale of the whole tensor)
 *   exact:       got = ref                                 (counters)
 */
export interface Tolerance {
  mode: 'elementwise' | 'tensor' | 'exact';
  atol: number;
  rtol: number;
}

export interface TensorCheck {
  name: string;
  numel: number;
  /** largest |got − ref| */
  worstAbs: number;
  /**
   * largest relative error: |got − ref| / |ref| per element (elementwise, exact),
   * or worstAbs / max|ref| (tensor mode); 0 where both are 0
   */
  worstRel: number;
  /** largest error divided by its allowance; ≤ 1 passes */
  ratio: number;
  /** index of the element with the largest ratio */
  worstIndex: number;
  pass: boolean;
  /** why the check could not be made (missing tensor, size mismatch), or why it was skipped */
  note?: string;
  /** not compared (the backend cannot compute it the reference's way); does not count for pass */
  skipped?: boolean;
}

export function compareTensor(
  name: string,
  got: ArrayLike<number> | undefined,
  ref: ArrayLike<number> | undefined,
  tol: Tolerance,
): TensorCheck {
  const fail = (note: string): TensorCheck => ({
    name,
    numel: ref?.length ?? got?.length ?? 0,
    worstAbs: NaN,
    worstRel: NaN,
    ratio: Infinity,
    worstIndex: -1,
    pass: false,
    note,
  });
  if (!ref) return fail('no reference tensor');
  if (!got) return fail('not computed');
  if (got.length !== ref.length) return fail(`${got.length} values computed, ${ref.length} in the reference`);
  let refMax = 0;
  for (let i = 0; i < ref.length; i++) refMax = Math.max(refMax, Math.abs(ref[i]));
  let worstAbs = 0;
  let worstRel = 0;
  let ratio = 0;
  let worstIndex = -1;
  for (let i = 0; i < ref.length; i++) {
    const bothNaN = Number.isNaN(got[i]) && Number.isNaN(ref[i]);
    const d = bothNaN ? 0 : Math.abs(got[i] - ref[i]);
    const err = Number.isNaN(d) ? Infinity : d; // NaN on one side only, or ±∞ vs a number
    const scale = tol.mode === 'tensor' ? refMax : Math.abs(ref[i]);
    const allowed = tol.mode === 'exact' ? 0 : tol.atol + tol.rtol * scale;
    const r = err === 0 ? 0 : err / allowed;
    worstAbs = Math.max(worstAbs, err);
    worstRel = Math.max(worstRel, err === 0 ? 0 : err / scale);
    if (r > ratio || worstIndex < 0) {
      ratio = r;
      worstIndex = i;
    }
  }
  return { name, numel: ref.length, worstAbs, worstRel, ratio, worstIndex, pass: ratio <= 1 };
}

/** Numbers of a float or I64 array, for comparisons. */
export function toNumbers(data: ArrayLike<number> | BigInt64Array): ArrayLike<number> {
  return data instanceof BigInt64Array ? Array.from(data, Number) : data;
}
