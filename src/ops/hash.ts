// The counter-based hash behind every random draw of a train step (dropout
// masks, step seeds), written once: JavaScript evaluates these definitions,
// and the C++ runtime and the CUDA kernels get their functions printed from
// them, so every backend draws the same bits.
import type { U32Arith } from './expr.js';

/** murmur3's fmix32 as steps on a 32-bit word: h ^= h >> s, or h *= k (mod 2³²). */
const FMIX32: ({ shr: number } | { mul: number })[] = [{ shr: 16 }, { mul: 0x85ebca6b }, { shr: 13 }, { mul: 0xc2b2ae35 }, { shr: 16 }];

/** The golden-ratio constant mixed into the high word of a step number. */
const GOLDEN = 0x9e3779b9;

/** An arithmetic that also has mix32 (a call in C, a function in JS). */
type MixArith<T> = U32Arith<T> & { mix(h: T): T };

/** hash(seed, stream, index) = mix(mix(seed ^ mix(stream)) ^ index) */
function hashOf<T>(o: MixArith<T>, seed: T, stream: T, index: T): T {
  return o.mix(o.xor(o.mix(o.xor(seed, o.mix(stream))), index));
}

/** below(seed, stream, index, n) = ((hash >> 8) · n) >> 24: an integer in [0, n), exact in 32 bits for n ≤ 256. */
function belowOf<T>(o: MixArith<T>, seed: T, stream: T, index: T, n: T): T {
  return o.shr(o.imul(o.shr(hashOf(o, seed, stream, index), 8), n), 24);
}

/** stepSeed(base, step) = mix(base ^ mix(lo ^ mix(hi + golden))), lo and hi the step's 32-bit halves. */
function stepSeedOf<T>(o: MixArith<T>, base: T, lo: T, hi: T): T {
  return o.mix(o.xor(base, o.mix(o.xor(lo, o.mix(o.uadd(hi, o.u32(GOLDEN)))))));
}

const js: MixArith<number> = {
  u32: (x) => x >>> 0,
  xor: (a, b) => (a ^ b) >>> 0,
  shr: (a, bits) => a >>> bits,
  imul: (a, b) => Math.imul(a, b) >>> 0,
  uadd: (a, b) => (a + b) >>> 0,
  mix: (h) => mix32(h),
};

/** 32-bit finaliser (murmur3 fmix32): a good bijective mixer of one word. */
export function mix32(h: number): number {
  let v = h >>> 0;
  for (const s of FMIX32) v = 'shr' in s ? (v ^ (v >>> s.shr)) >>> 0 : Math.imul(v, s.mul) >>> 0;
  return v;
}

/** The 32 bits behind hashUniform. */
export function hashBits(seed: number, stream: number, index: number): number {
  return hashOf(js, seed >>> 0, stream >>> 0, index >>> 0);
}

/** Counter-based uniform in [0, 1) with 24 bits of resolution: (hash >> 8) / 2²⁴. */
export function hashUniform(seed: number, stream: number, index: number): number {
  return (hashBits(seed, stream, index) >>> 8) / 16777216;
}

/** A counter-based integer in [0, n), n in 1..256 (augmentation's crop offsets and flips). */
export function hashBelow(seed: number, stream: number, index: number, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`hashBelow: n must be an integer in 1..256, got ${n}`);
  return belowOf(js, seed >>> 0, stream >>> 0, index >>> 0, n);
}

/** Dropout seed of training step `step` (0-based, below 2⁵³) for a run seeded with `seed`. */
export function stepSeed(seed: number, step: number): number {
  return stepSeedOf(js, seed >>> 0, step >>> 0, Math.floor(step / 4294967296) >>> 0);
}

/** Names of the printed C functions. */
export interface HashNames {
  mix: string;
  bits: string;
  uniform: string;
  step: string;
  /** hashBelow, printed only when named */
  below?: string;
}

/** The four functions (and hashBelow when named) as C/C++/CUDA source, each declared with `qualifiers` (e.g. 'TK_INLINE'). */
export function hashC(qualifiers: string, n: HashNames): string {
  const c: MixArith<string> = {
    u32: (x) => `0x${(x >>> 0).toString(16)}u`,
    xor: (a, b) => `(${a} ^ ${b})`,
    shr: (a, bits) => `(${a} >> ${bits})`,
    imul: (a, b) => `(${a} * ${b})`,
    uadd: (a, b) => `(${a} + ${b})`,
    mix: (h) => `${n.mix}(${h})`,
  };
  const steps = FMIX32.map((s) => ('shr' in s ? `  h ^= h >> ${s.shr};` : `  h *= 0x${s.mul.toString(16)}u;`));
  return [
    '// printed from src/ops/hash.ts (murmur3 fmix32, counter-based): bit for bit what the interpreter draws',
    `${qualifiers} uint32_t ${n.mix}(uint32_t h) {`,
    ...steps,
    '  return h;',
    '}',
    `${qualifiers} uint32_t ${n.bits}(uint32_t seed, uint32_t stream, uint32_t index) { return ${hashOf(c, 'seed', 'stream', 'index')}; }`,
    `${qualifiers} float ${n.uniform}(uint32_t seed, uint32_t stream, uint32_t index) { return (float)(${n.bits}(seed, stream, index) >> 8) / 16777216.0f; }`,
    `/** the dropout seed of training step \`step\` for base seed \`base\` */`,
    `${qualifiers} uint32_t ${n.step}(uint32_t base, uint64_t step) { return ${stepSeedOf(c, 'base', '(uint32_t)step', '(uint32_t)(step >> 32)')}; }`,
    ...(n.below
      ? [
          `/** an integer in [0, n), n in 1..256 */`,
          `${qualifiers} uint32_t ${n.below}(uint32_t seed, uint32_t stream, uint32_t index, uint32_t n) { return ${belowOf(c, 'seed', 'stream', 'index', 'n')}; }`,
        ]
      : []),
  ].join('\n');
}
