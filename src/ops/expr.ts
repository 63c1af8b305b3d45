// Elementwise math written once. A formula is a function over an abstract
// arithmetic `Arith<T>`: the interpreter evaluates it on numbers (float64),
// the code generators print it as C++ on SIMD vectors (CPU) or as CUDA C on
// floats. Activations, their derivatives, the optimiser and penalty rules and
// the dropout hash are all written this way, so the three backends cannot drift.

export interface Arith<T> {
  lit(x: number): T;
  add(a: T, b: T): T;
  sub(a: T, b: T): T;
  mul(a: T, b: T): T;
  div(a: T, b: T): T;
  neg(a: T): T;
  max(a: T, b: T): T;
  min(a: T, b: T): T;
  exp(a: T): T;
  log(a: T): T;
  tanh(a: T): T;
  erf(a: T): T;
  sqrt(a: T): T;
  sign(a: T): T;
  /** a > b, a condition for `select` (1 or 0 as a number) */
  gt(a: T, b: T): T;
  /** a < b */
  lt(a: T, b: T): T;
  /** a <= b */
  le(a: T, b: T): T;
  /** `cond ? a : b`, cond from gt/lt/le (or a 0/1 flag) */
  select(cond: T, a: T, b: T): T;
}

/** 32-bit unsigned integer arithmetic, for counter-based hashing. */
export interface U32Arith<T> {
  u32(x: number): T;
  xor(a: T, b: T): T;
  shr(a: T, bits: number): T;
  /** a·b mod 2³² */
  imul(a: T, b: T): T;
  /** a + b mod 2³² */
  uadd(a: T, b: T): T;
}

export const numberArith: Arith<number> & U32Arith<number> = {
  lit: (x) => x,
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  neg: (a) => -a,
  max: (a, b) => (a > b || Number.isNaN(a) ? a : b),
  min: (a, b) => (a < b || Number.isNaN(a) ? a : b),
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  erf,
  sqrt: Math.sqrt,
  sign: (a) => (a > 0 ? 1 : a < 0 ? -1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  select: (c, a, b) => (c ? a : b),
  u32: (x) => x >>> 0,
  xor: (a, b) => (a ^ b) >>> 0,
  shr: (a, bits) => a >>> bits,
  imul: (a, b) => Math.imul(a, b) >>> 0,
  uadd: (a, b) => (a + b) >>> 0,
};

/** A float literal in C: 2.0f, 0.5f, 1e-05f. */
export function cfloat(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`internal: non-finite constant ${x}`);
  return `${Number.isInteger(x) ? x.toFixed(1) : String(x)}f`;
}

const cIntArith: U32Arith<string> = {
  u32: (x) => `${x >>> 0}u`,
  xor: (a, b) => `(${a} ^ ${b})`,
  shr: (a, bits) => `(${a} >> ${bits})`,
  imul: (a, b) => `(${a} * ${b})`,
  uadd: (a, b) => `(${a} + ${b})`,
};

/** Plain C on float (CUDA device code, scalar C++). */
export const cArith: Arith<string> & U32Arith<string> = {
  ...cIntArith,
  lit: cfloat,
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  neg: (a) => `(-${a})`,
  max: (a, b) => `fmaxf(${a}, ${b})`,
  min: (a, b) => `fminf(${a}, ${b})`,
  exp: (a) => `expf(${a})`,
  log: (a) => `logf(${a})`,
  tanh: (a) => `tanhf(${a})`,
  erf: (a) => `erff(${a})`,
  sqrt: (a) => `sqrtf(${a})`,
  sign: (a) => `(float)((${a} > 0.0f) - (${a} < 0.0f))`,
  gt: (a, b) => `(${a} > ${b})`,
  lt: (a, b) => `(${a} < ${b})`,
  le: (a, b) => `(${a} <= ${b})`,
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
};

/** Plain C on double (the loss kernels accumulate in double). */
export const cDoubleArith: Arith<string> = {
  ...cArith,
  lit: (x) => {
    if (!Number.isFinite(x)) throw new Error(`internal: non-finite constant ${x}`);
    return Number.isInteger(x) ? x.toFixed(1) : String(x);
  },
  max: (a, b) => `fmax(${a}, ${b})`,
  min: (a, b) => `fmin(${a}, ${b})`,
  exp: (a) => `exp(${a})`,
  log: (a) => `log(${a})`,
  tanh: (a) => `tanh(${a})`,
  erf: (a) => `erf(${a})`,
  sqrt: (a) => `sqrt(${a})`,
  sign: (a) => `(double)((${a} > 0.0) - (${a} < 0.0))`,
};

/**
 * C++ on the CPU runtime's SIMD vectors `tk::vf` (GCC vector extensions):
 * comparisons give lane masks, `?:` selects lanewise, literals are splats.
 * exp and tanh use the runtime's vectorised Cephes versions; the rest go lane by lane.
 */
export const vecArith: Arith<string> = {
  lit: (x) => `vsplat(${cfloat(x)})`,
  add: cArith.add,
  sub: cArith.sub,
  mul: cArith.mul,
  div: cArith.div,
  neg: cArith.neg,
  max: (a, b) => `vmax(${a}, ${b})`,
  min: (a, b) => `vmin(${a}, ${b})`,
  exp: (a) => `vexp(${a})`,
  log: (a) => `vlanes(${a}, logf)`,
  tanh: (a) => `vtanh(${a})`,
  erf: (a) => `vlanes(${a}, erff)`,
  sqrt: (a) => `vlanes(${a}, sqrtf)`,
  sign: (a) => `((${a} > 0.0f ? vsplat(1.0f) : vsplat(0.0f)) - (${a} < 0.0f ? vsplat(1.0f) : vsplat(0.0f)))`,
  gt: cArith.gt,
  lt: cArith.lt,
  le: cArith.le,
  select: cArith.select,
};

/**
 * The error function to float64 precision (W. J. Cody's rational
 * approximations, as in most C libraries): JavaScript has no Math.erf.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  if (ax < 0.5) {
    const t = x * x;
    const p = [3.1611237438705655, 113.86415415105016, 377.485237685302, 3209.3775891384694, 0.18577770618460315];
    const q = [23.601290952344122, 244.02463793444417, 1282.6165260773723, 2844.236833439171];
    const num = (((p[4] * t + p[0]) * t + p[1]) * t + p[2]) * t + p[3];
    const den = (((t + q[0]) * t + q[1]) * t + q[2]) * t + q[3];
    return (x * num) / den;
  }
  return x < 0 ? erfc(ax) - 1 : 1 - erfc(ax);
}

/** erfc(x) for x >= 0.5 (Cody). */
function erfc(x: number): number {
  let r: number;
  if (x < 4) {
    const p = [
      0.5641884969886701, 8.883149794388377, 66.11919063714163, 298.6351381974001, 881.952221241769, 1712.0476126340707, 2051.0783778260716,
      1230.3393547979972, 2.1531153547440383e-8,
    ];
    const q = [
      15.744926110709835, 117.6939508913125, 537.1811018620099, 1621.3895745666903, 3290.7992357334597, 4362.619090143247,
      3439.3676741437216, 1230.3393548037495,
    ];
    let num = p[8] * x;
    let den = x;
    for (let i = 0; i < 7; i++) {
      num = (num + p[i]) * x;
      den = (den + q[i]) * x;
    }
    r = (num + p[7]) / (den + q[7]);
  } else {
    const p = [
      0.30532663496123236, 0.36034489994980445, 0.12578172611122926, 0.016083785148742275, 6.587491615298378e-4, 0.016315387137302097,
    ];
    const q = [2.568520192289822, 1.8729528499234604, 0.5279051029514285, 0.06051834131244132, 0.0023352049762686918];
    const z = 1 / (x * x);
    let num = p[5] * z;
    let den = z;
    for (let i = 0; i < 4; i++) {
      num = (num + p[i]) * z;
      den = (den + q[i]) * z;
    }
    r = (z * (num + p[4])) / (den + q[4]);
    r = (1 / Math.sqrt(Math.PI) - r) / x;
  }
  // exp(-x²) split to keep precision
  const xs = Math.trunc(x * 16) / 16;
  const del = (x - xs) * (x + xs);
  return Math.exp(-xs * xs) * Math.exp(-del) * r;
}
