// The elementwise functions of the `unary` op: one entry per function, each
// written once over `Arith` (src/ops/expr.ts). The interpreter evaluates the
// entry, the CPU backend prints it on SIMD vectors, the CUDA backend on floats.
// Adding an activation means adding an entry here (and its test): the builder
// API (`nn.<module>`, `F.<functional>`, a tensor method) is made from the entry.
import type { Arith } from './expr.js';

/** Parameter values of one use, e.g. { negativeSlope: 0.2 } or { approximate: 'tanh' }. */
export type ActParams = Record<string, number | string>;

export interface ActDef<P extends ActParams = ActParams> {
  /** PyTorch's functional name, for messages and reports: 'leaky_relu' */
  torch: string;
  /** `nn.<module>` class name, if users write it as a module */
  module?: string;
  /** `F.<functional>(x, ...)` name */
  functional?: string;
  /** `x.<method>()` and `torch.<method>(x)`, as PyTorch has them */
  method?: string;
  /** parameters in PyTorch's positional order, with defaults; a checker per parameter returns a problem or '' */
  params: { [K in keyof P]: { default: P[K]; check: (v: unknown) => string } };
  /** y = f(x) */
  f<T>(o: Arith<T>, x: T, p: P): T;
  /** dy/dx from the input x */
  dx<T>(o: Arith<T>, x: T, p: P): T;
  /** dy/dx from the output y, where y alone determines it (lets a fused kernel keep only y) */
  dy?: <T>(o: Arith<T>, y: T, p: P) => T;
  /** whether dy exists for these parameters (default: whenever `dy` is given) */
  dyValid?: (p: P) => boolean;
  /** non-decreasing in x: then max-pooling commutes with it (pool the pre-activations) */
  monotone: (p: P) => boolean;
}

const finite = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? '' : `must be a finite number, got ${JSON.stringify(v)}`);
const oneOf =
  (...names: string[]) =>
  (v: unknown) =>
    names.includes(v as string) ? '' : `must be one of ${names.map((n) => `'${n}'`).join(', ')}, got ${JSON.stringify(v)}`;

const always = () => true;

/** The builder names of an entry, kept as literal types (nn.ReLU6 and F.relu6 are then typed from the table). */
interface Names {
  module?: string;
  functional?: string;
  method?: string;
}

function def<P extends ActParams, const N extends Names>(d: ActDef<P> & N): ActDef<P> & N {
  return d;
}

/** σ(x) = 1 / (1 + e^−x) */
function sigmoid<T>(o: Arith<T>, x: T): T {
  return o.div(o.lit(1), o.add(o.lit(1), o.exp(o.neg(x))));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

export const ACTIVATIONS = {
  relu: def({
    torch: 'relu',
    module: 'ReLU',
    functional: 'relu',
    method: 'relu',
    params: {},
    f: (o, x) => o.select(o.gt(x, o.lit(0)), x, o.lit(0)),
    // PyTorch: the gradient at exactly 0 is 0
    dx: (o, x) => o.select(o.gt(x, o.lit(0)), o.lit(1), o.lit(0)),
    dy: (o, y) => o.select(o.gt(y, o.lit(0)), o.lit(1), o.lit(0)),
    monotone: always,
  }),
  tanh: def({
    torch: 'tanh',
    module: 'Tanh',
    functional: 'tanh',
    method: 'tanh',
    params: {},
    f: (o, x) => o.tanh(x),
    dx: (o, x) => o.sub(o.lit(1), o.mul(o.tanh(x), o.tanh(x))),
    dy: (o, y) => o.sub(o.lit(1), o.mul(y, y)),
    monotone: always,
  }),
  sigmoid: def({
    torch: 'sigmoid',
    module: 'Sigmoid',
    functional: 'sigmoid',
    method: 'sigmoid',
    params: {},
    f: (o, x) => sigmoid(o, x),
    dx: (o, x) => o.mul(sigmoid(o, x), o.sub(o.lit(1), sigmoid(o, x))),
    dy: (o, y) => o.mul(y, o.sub(o.lit(1), y)),
    monotone: always,
  }),
  leaky_relu: def({
    torch: 'leaky_relu',
    module: 'LeakyReLU',
    functional: 'leakyRelu',
    params: { negativeSlope: { default: 0.01, check: finite } },
    // PyTorch: x > 0 ? x : slope·x, gradient slope at 0
    f: (o, x, p) => o.select(o.gt(x, o.lit(0)), x, o.mul(x, o.lit(p.negativeSlope))),
    dx: (o, x, p) => o.select(o.gt(x, o.lit(0)), o.lit(1), o.lit(p.negativeSlope)),
    dy: (o, y, p) => o.select(o.gt(y, o.lit(0)), o.lit(1), o.lit(p.negativeSlope)),
    dyValid: (p) => p.negativeSlope > 0,
    monotone: (p) => p.negativeSlope >= 0,
  }),
  elu: def({
    torch: 'elu',
    module: 'ELU',
    functional: 'elu',
    params: { alpha: { default: 1, check: finite } },
    f: (o, x, p) => o.select(o.gt(x, o.lit(0)), x, o.mul(o.lit(p.alpha), o.sub(o.exp(x), o.lit(1)))),
    dx: (o, x, p) => o.select(o.gt(x, o.lit(0)), o.lit(1), o.mul(o.lit(p.alpha), o.exp(x))),
    // y ≤ 0 ⇔ x ≤ 0 when alpha > 0, and then α·eˣ = y + α
    dy: (o, y, p) => o.select(o.gt(y, o.lit(0)), o.lit(1), o.add(y, o.lit(p.alpha))),
    dyValid: (p) => p.alpha > 0,
    monotone: (p) => p.alpha >= 0,
  }),
  gelu: def({
    torch: 'gelu',
    module: 'GELU',
    functional: 'gelu',
    params: { approximate: { default: 'none', check: oneOf('none', 'tanh') } },
    f: (o, x, p) => o.mul(o.mul(o.lit(0.5), x), o.add(o.lit(1), geluInner(o, x, p))),
    dx: (o, x, p) => {
      const inner = geluInner(o, x, p);
      const half = o.mul(o.lit(0.5), o.add(o.lit(1), inner));
      if (p.approximate === 'none') {
        // Φ(x) + x·φ(x)
        const pdf = o.mul(o.lit(1 / Math.sqrt(2 * Math.PI)), o.exp(o.mul(o.lit(-0.5), o.mul(x, x))));
        return o.add(half, o.mul(x, pdf));
      }
      // ½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3c·x²), t = tanh(√(2/π)(x + c·x³))
      const dinner = o.mul(o.lit(SQRT_2_OVER_PI), o.add(o.lit(1), o.mul(o.lit(3 * GELU_C), o.mul(x, x))));
      return o.add(half, o.mul(o.mul(o.mul(o.lit(0.5), x), o.sub(o.lit(1), o.mul(inner, inner))), dinner));
    },
    monotone: () => false,
  }),
  silu: def({
    torch: 'silu',
    module: 'SiLU',
    functional: 'silu',
    params: {},
    f: (o, x) => o.mul(x, sigmoid(o, x)),
    // σ(x)·(1 + x·(1 − σ(x)))
    dx: (o, x) => o.mul(sigmoid(o, x), o.add(o.lit(1), o.mul(x, o.sub(o.lit(1), sigmoid(o, x))))),
    monotone: () => false,
  }),
  hardswish: def({
    torch: 'hardswish',
    module: 'Hardswish',
    functional: 'hardswish',
    params: {},
    // x·relu6(x + 3)/6
    f: (o, x) => o.select(o.le(x, o.lit(-3)), o.lit(0), o.select(o.lt(x, o.lit(3)), o.div(o.mul(x, o.add(x, o.lit(3))), o.lit(6)), x)),
    // PyTorch's backward: 0 below −3, x/3 + ½ on [−3, 3], 1 above
    dx: (o, x) => o.select(o.lt(x, o.lit(-3)), o.lit(0), o.select(o.le(x, o.lit(3)), o.add(o.div(x, o.lit(3)), o.lit(0.5)), o.lit(1))),
    monotone: () => false,
  }),
  relu6: def({
    torch: 'relu6',
    module: 'ReLU6',
    functional: 'relu6',
    params: {},
    // min(max(x, 0), 6); PyTorch's hardtanh backward: gradient 1 strictly inside (0, 6)
    f: (o, x) => o.min(o.max(x, o.lit(0)), o.lit(6)),
    dx: (o, x) => o.select(o.gt(x, o.lit(0)), o.select(o.lt(x, o.lit(6)), o.lit(1), o.lit(0)), o.lit(0)),
    dy: (o, y) => o.select(o.gt(y, o.lit(0)), o.select(o.lt(y, o.lit(6)), o.lit(1), o.lit(0)), o.lit(0)),
    monotone: always,
  }),
  /** x·scale + shift: scalar arithmetic on a tensor (x.mul(2), x.add(1), x.sub(0.5)) */
  affine: def({
    torch: 'affine',
    params: { scale: { default: 1, check: finite }, shift: { default: 0, check: finite } },
    f: (o, x, p) => o.add(o.mul(x, o.lit(p.scale)), o.lit(p.shift)),
    dx: (o, _x, p) => o.lit(p.scale),
    dy: (o, _y, p) => o.lit(p.scale),
    monotone: (p) => p.scale >= 0,
  }),
};

export type ActName = keyof typeof ACTIVATIONS;

type Entries = typeof ACTIVATIONS;
type NameOf<K extends 'module' | 'functional' | 'method'> = {
  [A in keyof Entries]: Entries[A] extends { [P in K]: infer M extends string } ? M : never;
}[keyof Entries];
/** 'ReLU' | 'Tanh' | ... : every entry's module name */
export type ActModuleName = NameOf<'module'>;
/** 'relu' | 'leakyRelu' | ... */
export type ActFunctionalName = NameOf<'functional'>;
/** 'relu' | 'tanh' | 'sigmoid' */
export type ActMethodName = NameOf<'method'>;

function geluInner<T>(o: Arith<T>, x: T, p: { approximate: string }): T {
  if (p.approximate === 'none') return o.erf(o.mul(x, o.lit(Math.SQRT1_2)));
  return o.tanh(o.mul(o.lit(SQRT_2_OVER_PI), o.add(x, o.mul(o.lit(GELU_C), o.mul(x, o.mul(x, x))))));
}

/** The entry of `fn`, typed loosely for generic code. */
export function actDef(fn: string): ActDef {
  const d = (ACTIVATIONS as unknown as Record<string, ActDef | undefined>)[fn];
  if (!d) throw new Error(`internal: no elementwise function '${fn}'`);
  return d;
}

/** Whether the derivative can be taken from the output alone. */
export function hasDy(fn: string, p: ActParams): boolean {
  const d = actDef(fn);
  return d.dy !== undefined && (d.dyValid ? d.dyValid(p) : true);
}

/** Fills in defaults and checks values; `given` are PyTorch's positional args or one options object. */
export function actParams(fn: string, given: unknown[], where: string): ActParams {
  const d = actDef(fn);
  const names = Object.keys(d.params);
  const opts = given.length === 1 && given[0] !== null && typeof given[0] === 'object' ? (given[0] as Record<string, unknown>) : null;
  const out: ActParams = {};
  if (!opts && given.length > names.length) throw new Error(`${where}: takes at most ${names.length} argument(s), got ${given.length}`);
  if (opts)
    for (const k of Object.keys(opts))
      if (!names.includes(k) && k !== 'inplace')
        throw new Error(`${where}: unknown option '${k}' (options: ${[...names, 'inplace'].join(', ')})`);
  names.forEach((k, i) => {
    const v = opts ? opts[k] : given[i];
    const value = v === undefined ? d.params[k].default : v;
    const problem = d.params[k].check(value);
    if (problem) throw new Error(`${where}: ${k} ${problem}`);
    out[k] = value as number | string;
  });
  return out;
}

/** 'leaky_relu(negativeSlope=0.2)' */
export function describeAct(fn: string, p: ActParams): string {
  const args = Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'string' ? `'${v}'` : v}`);
  return `${actDef(fn).torch}${args.length ? `(${args.join(', ')})` : ''}`;
}
