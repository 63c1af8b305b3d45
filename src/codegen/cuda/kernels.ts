// CUDA kernel sources for the CUDA backend, one generator per kernel family.
// Every shape is a constexpr inside the kernel body; only the batch size (and
// split counts derived from it) arrive at run time. A generator returns the
// source with the placeholder KNAME for the kernel's name: the emitter keys
// kernels by that text, so two uses with one signature share one kernel.
//
// Conventions: activations are NCHW float32, contiguous per sample. A gradient
// output is written as out[i] = (base ? base[i] : 0) + contribution, so one
// kernel can write a fresh gradient, add to an existing one in place
// (base == out), or add a pending identity contribution (base = other buffer).
// Reductions are deterministic: fixed-order shuffles and fixed-order sums over
// per-block partials; no float atomics anywhere.
import { actDef, type ActName, type ActParams } from '../../ops/activations.js';
import { cArith } from '../../ops/expr.js';
import { bnMath, bnStatsC } from '../../ops/batchnorm.js';
import { hashC } from '../../ops/hash.js';
import { AUGMENT_STREAM } from '../../data/augment.js';
import { lossC } from '../../ops/loss.js';
import { adamView, penaltyGrad, penaltyLoss, sgdStep, type StepTerms } from '../../train/rules.js';

/** A fused or standalone elementwise function (src/ops/activations.ts), or none. */
export type Act = 'none' | { fn: ActName; p: ActParams };

/** The Act of a fused unary node (none without one). */
export function actOf(u: { attrs: { fn: ActName; p: ActParams } } | undefined): Act {
  return u ? { fn: u.attrs.fn, p: u.attrs.p } : 'none';
}

/** Identifier-safe name of an act, for kernel names and comments. */
export function actLabel(act: Act): string {
  return act === 'none' ? 'none' : act.fn;
}

export const THREADS = 256;

export interface KernelSrc {
  /** family, used in the kernel's name */
  kind: string;
  /** source with KNAME as the kernel name */
  code: string;
}

/** Non-overlapping max pooling fused after a producer (window = stride, no padding). */
export interface FusedPool {
  kh: number;
  kw: number;
  /** pooled output size */
  oh: number;
  ow: number;
}

/** How a fused group's stored output relates to the producer's pre-activation value. */
export interface Epilogue {
  act: Act;
  pool: FusedPool | null;
  /** channels and spatial size of the producer's (unpooled) output */
  C: number;
  H: number;
  W: number;
  /**
   * batchnorm only: a residual add fused after the act (y = act(u) + other). The act's
   * derivative is then recomputed from u = fmaf((z - mean)·invstd, gamma, beta), as forward.
   */
  add?: boolean;
}

/** act(v) as CUDA C, printed from the table. */
export function actExpr(act: Act, v: string): string {
  return act === 'none' ? v : actDef(act.fn).f(cArith, v, act.p);
}

/** d act / d pre-activation, from the activation's output y (acts fused into a kernel have it). */
export function actGradExpr(act: Act, y: string): string {
  if (act === 'none') return '1.f';
  const dy = actDef(act.fn).dy;
  if (!dy) throw new Error(`internal: ${act.fn} has no derivative from its output`);
  return dy(cArith, y, act.p);
}

/** d act / d input, from the input x. */
export function actInputGradExpr(act: Act, x: string): string {
  return act === 'none' ? '1.f' : actDef(act.fn).dx(cArith, x, act.p);
}

function lit(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`internal: non-finite constant ${x}`);
  const s = Number.isInteger(x) ? x.toFixed(1) : String(x);
  return `${s}f`;
}

function dlit(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`internal: non-finite constant ${x}`);
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

/**
 * Statements that set `float gz` to the gradient at the producer's
 * pre-activation position (b, c, y, x) / flat index `flat`, from the gradient
 * `gout` of the group's stored output `yout` (and `idx` when pooled).
 */
export function preGradCode(ep: Epilogue, b: string, c: string, y: string, x: string, flat: string, invstd = `invstd[${c}]`): string {
  if (ep.add) {
    if (ep.act === 'none') return `float gz = gout[${flat}];`;
    return `float gz; { const float u = fmaf((z[${flat}] - mean[${c}]) * ${invstd}, gamma[${c}], beta[${c}]); const float yv = ${actExpr(ep.act, 'u')}; gz = gout[${flat}] * ${actGradExpr(ep.act, 'yv')}; }`;
  }
  if (!ep.pool) {
    if (ep.act === 'none') return `float gz = gout[${flat}];`;
    return `float gz; { const float yv = yout[${flat}]; gz = gout[${flat}] * ${actGradExpr(ep.act, 'yv')}; }`;
  }
  const p = ep.pool;
  return `float gz = 0.f;
    {
      const int py = ${y} / ${p.kh}, px = ${x} / ${p.kw};
      if (py < ${p.oh} && px < ${p.ow}) {
        const int j = ((${b} * ${ep.C} + ${c}) * ${p.oh} + py) * ${p.ow} + px;
        if ((int)idx[j] == (${y} - py * ${p.kh}) * ${p.kw} + (${x} - px * ${p.kw})) { const float yv = yout[j]; gz = gout[j] * ${actGradExpr(ep.act, 'yv')}; }
      }
    }`;
}

// ------------------------------------------------------------------ conv

export interface ConvShape {
  C: number;
  H: number;
  W: number;
  O: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
  bias: boolean;
}

function pickDivisor(n: number, options: number[], ok: (d: number) => boolean): number {
  for (const d of options) if (n % d === 0 && ok(d)) return d;
  return 1;
}

/**
 * Threads to aim for at the reference batch: an H100 holds 132 SMs x 2048 threads;
 * these convolutions are latency-bound below ~8 warps per SM, so the tilings trade
 * per-thread reuse for more threads until about this many run.
 */
export const TARGET_THREADS = 96 * 1024;

/** Thread tile of the conv forward: OCT output channels x TH x TW output pixels (the pool window when fused). */
export function convFwdTiling(
  s: ConvShape,
  pool: FusedPool | null,
  refBatch: number,
): { OCT: number; TH: number; TW: number; TY: number; TX: number } {
  let TH: number, TW: number, TY: number, TX: number;
  if (pool) {
    TH = pool.kh;
    TW = pool.kw;
    TY = pool.oh;
    TX = pool.ow;
  } else {
    TH = 1;
    TY = s.OH;
    TW = pickDivisor(s.OW, [2], () => true);
    TX = s.OW / TW;
  }
  const perGroup = refBatch * TY * TX;
  const wsOk = (d: number) => d * s.C * s.KH * s.KW <= 8192;
  const OCT = pickDivisor(s.O, [8, 4, 2], (d) => perGroup * (s.O / d) >= TARGET_THREADS && d * TH * TW <= 32 && wsOk(d));
  return { OCT, TH, TW, TY, TX };
}

/** BatchNorm statistics computed in a conv's epilogue (the conv's only consumer is a train-mode BatchNorm). */
export interface FusedStats {
  eps: number;
  momentum: number;
}

export function convFwd(
  s: ConvShape,
  ep: Epilogue,
  refBatch: number,
  stats: FusedStats | null = null,
): KernelSrc & { OCT: number; TY: number; TX: number } {
  if (stats && (ep.act !== 'none' || ep.pool)) throw new Error('internal: BatchNorm statistics fused after an act or pool');
  const { OCT, TH, TW, TY, TX } = convFwdTiling(s, ep.pool, refBatch);
  const PR = (TH - 1) * s.SH + s.KH;
  const PC = (TW - 1) * s.SW + s.KW;
  const WS = OCT * s.C * s.KH * s.KW;
  const NP = TH * TW;
  const out = ep.pool
    ? `{
        float best = 0.f; int bi = -1;
        #pragma unroll
        for (int j = 0; j < NP; j++) {
          const float v = ${actExpr(ep.act, 'acc[oc][j]')};
          if (bi < 0 || v > best || isnan(v)) { best = v; bi = j; }
        }
        const size_t at = ((size_t)(b * O + o) * TY + ty) * TX + tx;
        y[at] = best;
        if (idx) idx[at] = (unsigned char)bi;
      }`
    : `{
        #pragma unroll
        for (int j = 0; j < TW; j++) y[((size_t)(b * O + o) * OH + oy0) * OW + ox0 + j] = ${actExpr(ep.act, 'acc[oc][j]')};
      }`;
  const BODY = `  const int tx = t % TX, ty = (t / TX) % TY, b = t / (TX * TY);
  const int oy0 = ty * TH, ox0 = tx * TW;
  const int iy0 = oy0 * SH - PH, ix0 = ox0 * SW - PW;
  float acc[OCT][NP];
  #pragma unroll
  for (int oc = 0; oc < OCT; oc++) {
    const float b0 = ${s.bias ? 'bias[og * OCT + oc]' : '0.f'};
    #pragma unroll
    for (int j = 0; j < NP; j++) acc[oc][j] = b0;
  }
  const float* xb = x + (size_t)(rows ? rows[sc->cursor + b] : b) * C * H * W;
  #pragma unroll ${s.C <= 4 ? s.C : 2}
  for (int c = 0; c < C; c++) {
    float p[PR][PC];
    #pragma unroll
    for (int r = 0; r < PR; r++) {
      const int iy = iy0 + r;
      #pragma unroll
      for (int q = 0; q < PC; q++) {
        const int ix = ix0 + q;
        p[r][q] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? __ldg(xb + (c * H + iy) * W + ix) : 0.f;
      }
    }
    #pragma unroll
    for (int oc = 0; oc < OCT; oc++) {
      #pragma unroll
      for (int ky = 0; ky < KH; ky++) {
        #pragma unroll
        for (int kx = 0; kx < KW; kx++) {
          const float wv = sw[((oc * C + c) * KH + ky) * KW + kx];
          #pragma unroll
          for (int th = 0; th < TH; th++) {
            #pragma unroll
            for (int tw = 0; tw < TW; tw++) acc[oc][th * TW + tw] = fmaf(wv, p[th * SH + ky][tw * SW + kx], acc[oc][th * TW + tw]);
          }
        }
      }
    }
  }
  #pragma unroll
  for (int oc = 0; oc < OCT; oc++) {
    const int o = og * OCT + oc;
    ${out}
  }
`;
  const statsBody = stats
    ? `  double v[2 * OCT];
  #pragma unroll
  for (int k = 0; k < 2 * OCT; k++) v[k] = 0.0;
  if (t < B * TY * TX) {
${BODY}
    #pragma unroll
    for (int oc = 0; oc < OCT; oc++) {
      #pragma unroll
      for (int j = 0; j < NP; j++) { const double a = acc[oc][j]; v[oc] += a; v[OCT + oc] += a * a; }
    }
  }
  __shared__ double tot[2 * OCT];
${blockSumDoubles(2 * OCT)}
  if (threadIdx.x < OCT) {
    const int o = og * OCT + threadIdx.x;
    part[(size_t)o * gridDim.x + blockIdx.x] = tot[threadIdx.x];
    part[(size_t)(O + o) * gridDim.x + blockIdx.x] = tot[OCT + threadIdx.x];
  }
${LAST_BLOCK}
  const int N = B * OH * OW;
  for (int k = threadIdx.x; k < O; k += blockDim.x) {
    double a = 0.0, q = 0.0;
    for (int j = 0; j < (int)gridDim.x; j++) { a += ((volatile double*)part)[(size_t)k * gridDim.x + j]; q += ((volatile double*)part)[(size_t)(O + k) * gridDim.x + j]; }
    const double mean = a / N;
    double var = q / N - mean * mean;
    if (var < 0.0) var = 0.0;
    mean_out[k] = (float)mean;
${bnFinish(stats.eps, stats.momentum)}
  }
  if (threadIdx.x == 0) nbt[0] += 1;
`
    : '';
  const statsArgs = stats
    ? ',\n    double* __restrict__ part, float* __restrict__ mean_out, float* __restrict__ invstd_out, float* __restrict__ rmean, float* __restrict__ rvar, long long* __restrict__ nbt, unsigned* counter'
    : '';
  const code = `// conv2d ${s.C}->${s.O} ${s.H}x${s.W} k${s.KH}x${s.KW} s${s.SH}x${s.SW} p${s.PH}x${s.PW}${s.bias ? ' +bias' : ''}${ep.act !== 'none' ? ' +' + actLabel(ep.act) : ''}${ep.pool ? ` +maxpool${ep.pool.kh}x${ep.pool.kw}` : ''}${stats ? ' +batchnorm statistics' : ''}: thread = ${OCT} channels x ${TH}x${TW} pixels
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, const unsigned* __restrict__ rows, const TkScalars* __restrict__ sc,
    const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y, unsigned char* __restrict__ idx, int B${statsArgs}) {
  constexpr int C = ${s.C}, H = ${s.H}, W = ${s.W}, O = ${s.O}, OH = ${s.OH}, OW = ${s.OW};
  constexpr int KH = ${s.KH}, KW = ${s.KW}, SH = ${s.SH}, SW = ${s.SW}, PH = ${s.PH}, PW = ${s.PW};
  constexpr int OCT = ${OCT}, TH = ${TH}, TW = ${TW}, TY = ${TY}, TX = ${TX}, PR = ${PR}, PC = ${PC}, NP = ${NP}, WS = ${WS};
  (void)OH; (void)NP; (void)idx; (void)bias;
  __shared__ float sw[WS];
  const int og = blockIdx.y;
  for (int i = threadIdx.x; i < WS; i += blockDim.x) sw[i] = w[(size_t)og * WS + i];
  __syncthreads();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
${stats ? statsBody : `  if (t >= B * TY * TX) return;\n${BODY}`}}
`;
  return { kind: stats ? 'conv_fwd_bnstats' : 'conv_fwd', code, OCT, TY, TX };
}

/** Channels per weight-gradient block: CG·KH·KW register accumulators. */
/**
 * Weight-gradient blocking: a block owns OG output channels x CG input channels (x KH·KW taps,
 * OG·(CG·KH·KW + 1) register accumulators). Without a fused pool every output position has a
 * gradient for every channel, so OG > 1 reuses each input load OG times; after a fused max-pool
 * the positions differ per channel (argmax), so OG = 1.
 */
export function wgradGroup(s: ConvShape, pooled: boolean): { OG: number; CG: number; NCG: number; NOG: number } {
  const k = s.KH * s.KW;
  const OG = pooled ? 1 : pickDivisor(s.O, [4, 2], () => true);
  const CG = Math.max(1, Math.min(s.C, Math.floor(32 / (k * OG))));
  return { OG, CG, NCG: Math.ceil(s.C / CG), NOG: s.O / OG };
}

/** Largest number of batch splits of a weight gradient (sizes the partial buffers). */
export const MAX_SPLITS = 16;

/** Batch splits of a weight gradient: host and device compute the same number (the SGD kernel sums them). */
export const SPLITS_FN = `__host__ __device__ inline int tk_splits(int B, int blocks, int sms, int* SB) {
  int s = (4 * sms + blocks - 1) / blocks;
  if (s > B) s = B;
  if (s > ${MAX_SPLITS}) s = ${MAX_SPLITS};
  if (s < 1) s = 1;
  const int sb = (B + s - 1) / s;
  if (SB) *SB = sb;
  return (B + sb - 1) / sb;
}
`;

const CONV_CONSTS = (s: ConvShape) => `  constexpr int C = ${s.C}, H = ${s.H}, W = ${s.W}, O = ${s.O}, OH = ${s.OH}, OW = ${s.OW};
  constexpr int KH = ${s.KH}, KW = ${s.KW}, SH = ${s.SH}, SW = ${s.SW}, PH = ${s.PH}, PW = ${s.PW};
  (void)SH; (void)SW; (void)yout; (void)idx;`;

/** Weight-gradient partials for OG output channels per block (no fused pool): one input load feeds OG FMAs. */
function wgradBodyMulti(s: ConvShape, ep: Epilogue, OG: number, CG: number): string {
  const R = CG * s.KH * s.KW;
  const WARPS = THREADS / 32;
  const gAt = preGradCode(ep, 'b', '(o0 + og)', 'oy', 'ox', '((size_t)(b * O + o0 + og) * OH + oy) * OW + ox');
  return `  constexpr int OG = ${OG}, CG = ${CG}, R = ${R}, WPART = C * KH * KW + 1, WARPS = ${WARPS};
  const int o0 = BX * OG, c0 = BY * CG, split = BZ;
  const int b0 = split * SB, b1 = min(B, b0 + SB);
  const int npos = (b1 - b0) * OH * OW;
  float acc[OG][R + 1];
  #pragma unroll
  for (int og = 0; og < OG; og++) {
    #pragma unroll
    for (int r = 0; r <= R; r++) acc[og][r] = 0.f;
  }
  for (int q = threadIdx.x; q < npos; q += blockDim.x) {
    const int ox = q % OW, oy = (q / OW) % OH, b = b0 + q / (OW * OH);
    float g[OG];
    bool any = false;
    #pragma unroll
    for (int og = 0; og < OG; og++) {
      { ${gAt} g[og] = gz; }
      any = any || g[og] != 0.f;
      acc[og][R] += g[og];
    }
    if (!any) continue;
    const float* xb = x + (size_t)(rows ? rows[sc->cursor + b] : b) * C * H * W;
    #pragma unroll
    for (int cc = 0; cc < CG; cc++) {
      const int c = c0 + cc;
      if (C % CG != 0 && c >= C) break;
      #pragma unroll
      for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * SH - PH + ky;
        #pragma unroll
        for (int kx = 0; kx < KW; kx++) {
          const int ix = ox * SW - PW + kx;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
            const float xv = __ldg(xb + (c * H + iy) * W + ix);
            #pragma unroll
            for (int og = 0; og < OG; og++) acc[og][(cc * KH + ky) * KW + kx] = fmaf(g[og], xv, acc[og][(cc * KH + ky) * KW + kx]);
          }
        }
      }
    }
  }
  __shared__ float red[OG * (R + 1)][WARPS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  #pragma unroll
  for (int og = 0; og < OG; og++) {
    #pragma unroll
    for (int r = 0; r <= R; r++) {
      float v = acc[og][r];
      #pragma unroll
      for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
      if (lane == 0) red[og * (R + 1) + r][warp] = v;
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < OG * (R + 1); e += blockDim.x) {
    const int og = e / (R + 1), r = e % (R + 1);
    float v = 0.f;
    #pragma unroll
    for (int k = 0; k < WARPS; k++) v += red[e][k];
    float* dst = part + ((size_t)split * O + o0 + og) * WPART;
    if (r < R) {
      const int c = c0 + r / (KH * KW);
      if (c < C) dst[c0 * KH * KW + r] = v;
    } else if (BY == 0) {
      dst[C * KH * KW] = v;
    }
  }
`;
}

/** Body of the weight-gradient partial sums for block (BX = out channel, BY = channel group, BZ = batch split). */
function wgradBody(s: ConvShape, ep: Epilogue): { body: string; CG: number } {
  const { OG, CG } = wgradGroup(s, !!ep.pool);
  if (OG > 1) return { body: wgradBodyMulti(s, ep, OG, CG), CG };
  const R = CG * s.KH * s.KW;
  const WARPS = THREADS / 32;
  // After a fused (non-overlapping) max-pool only each window's argmax has a gradient: visit the
  // pooled outputs and jump to their argmax instead of every output (3 of 4 zero at 2x2, divergent).
  const p = ep.pool;
  const loop = p
    ? `  const int npos = (b1 - b0) * ${p.oh * p.ow};
  float acc[R + 1];
  #pragma unroll
  for (int r = 0; r <= R; r++) acc[r] = 0.f;
  for (int q = threadIdx.x; q < npos; q += blockDim.x) {
    const int px = q % ${p.ow}, py = (q / ${p.ow}) % ${p.oh}, b = b0 + q / ${p.oh * p.ow};
    const size_t j = ((size_t)(b * O + o) * ${p.oh} + py) * ${p.ow} + px;
    const int at = idx[j];
    const int oy = py * ${p.kh} + at / ${p.kw}, ox = px * ${p.kw} + at % ${p.kw};
    const float yv = yout[j];
    const float g = gout[j] * ${actGradExpr(ep.act, 'yv')};`
    : `  const int npos = (b1 - b0) * OH * OW;
  float acc[R + 1];
  #pragma unroll
  for (int r = 0; r <= R; r++) acc[r] = 0.f;
  for (int q = threadIdx.x; q < npos; q += blockDim.x) {
    const int ox = q % OW, oy = (q / OW) % OH, b = b0 + q / (OW * OH);
    ${preGradCode(ep, 'b', 'o', 'oy', 'ox', '((size_t)(b * O + o) * OH + oy) * OW + ox')}
    const float g = gz;`;
  const body = `  constexpr int CG = ${CG}, R = ${R}, WPART = C * KH * KW + 1, WARPS = ${WARPS};
  const int o = BX, c0 = BY * CG, split = BZ;
  const int b0 = split * SB, b1 = min(B, b0 + SB);
${loop}
    if (g == 0.f) continue;
    acc[R] += g;
    const float* xb = x + (size_t)(rows ? rows[sc->cursor + b] : b) * C * H * W;
    #pragma unroll
    for (int cc = 0; cc < CG; cc++) {
      const int c = c0 + cc;
      if (C % CG != 0 && c >= C) break;
      #pragma unroll
      for (int ky = 0; ky < KH; ky++) {
        const int iy = oy * SH - PH + ky;
        #pragma unroll
        for (int kx = 0; kx < KW; kx++) {
          const int ix = ox * SW - PW + kx;
          if (iy >= 0 && iy < H && ix >= 0 && ix < W) acc[(cc * KH + ky) * KW + kx] = fmaf(g, __ldg(xb + (c * H + iy) * W + ix), acc[(cc * KH + ky) * KW + kx]);
        }
      }
    }
  }
  __shared__ float red[R + 1][WARPS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  #pragma unroll
  for (int r = 0; r <= R; r++) {
    float v = acc[r];
    #pragma unroll
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    if (lane == 0) red[r][warp] = v;
  }
  __syncthreads();
  for (int r = threadIdx.x; r <= R; r += blockDim.x) {
    float v = 0.f;
    #pragma unroll
    for (int k = 0; k < WARPS; k++) v += red[r][k];
    float* dst = part + ((size_t)split * O + o) * WPART;
    if (r < R) {
      const int c = c0 + r / (KH * KW);
      if (c < C) dst[c0 * KH * KW + r] = v;
    } else if (BY == 0) {
      dst[C * KH * KW] = v;
    }
  }
`;
  return { body, CG };
}

/**
 * Weight/bias gradient partial sums of one conv use: block = (out channel, channel group,
 * batch split); dZ (through the group's act and max-pool) is computed on the fly.
 */
export function convWgradPartial(s: ConvShape, ep: Epilogue): KernelSrc {
  const { body, CG } = wgradBody(s, ep);
  const code = `// conv2d ${s.C}->${s.O} k${s.KH}x${s.KW}${ep.act !== 'none' ? ' after ' + actLabel(ep.act) : ''}${ep.pool ? ' and maxpool' : ''} weight/bias gradient, partial sums: block = (out channel, ${CG}-channel group, batch split)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx,
    const float* __restrict__ x, const unsigned* __restrict__ rows, const TkScalars* __restrict__ sc, float* __restrict__ part, int B, int SB) {
${CONV_CONSTS(s)}
  const int BX = blockIdx.x, BY = blockIdx.y, BZ = blockIdx.z;
${body}}
`;
  return { kind: 'conv_wgrad', code };
}

export function convDgradTiling(s: ConvShape, refBatch: number): { ICT: number; TW: number; TX: number } {
  const stride1 = s.SH === 1 && s.SW === 1;
  const TW = stride1 ? pickDivisor(s.W, [2], () => true) : 1;
  const TX = s.W / TW;
  const per = refBatch * s.H * TX;
  const ICT = pickDivisor(s.C, [8, 4, 2], (d) => per * (s.C / d) >= TARGET_THREADS && s.O * d * s.KH * s.KW <= 8192);
  return { ICT, TW, TX };
}

/** Body of the input gradient (a transposed convolution, gathered per input pixel) for block (BX, BY = input-channel group). */
function dgradBody(s: ConvShape, ep: Epilogue, refBatch: number): { body: string; ICT: number; TW: number; TX: number } {
  const dzAt = (oy: string, ox: string) =>
    `{ ${preGradCode(ep, 'b', 'o', oy, ox, `((size_t)(b * O + o) * OH + ${oy}) * OW + ${ox}`)} DZV = gz; }`;
  const { ICT, TW, TX } = convDgradTiling(s, refBatch);
  const WS = s.O * ICT * s.KH * s.KW;
  const stride1 = s.SH === 1 && s.SW === 1;
  const body = stride1
    ? `    float q[KH][TW + KW - 1];
    #pragma unroll
    for (int r = 0; r < KH; r++) {
      const int oy = iy + PH - (KH - 1) + r;
      #pragma unroll
      for (int u = 0; u < TW + KW - 1; u++) {
        const int ox = ix0 + PW - (KW - 1) + u;
        float dzv = 0.f;
        if (oy >= 0 && oy < OH && ox >= 0 && ox < OW) ${dzAt('oy', 'ox').replace('DZV', 'dzv')}
        q[r][u] = dzv;
      }
    }
    #pragma unroll
    for (int ic = 0; ic < ICT; ic++) {
      #pragma unroll
      for (int ky = 0; ky < KH; ky++) {
        #pragma unroll
        for (int kx = 0; kx < KW; kx++) {
          const float wv = sw[((o * ICT + ic) * KH + ky) * KW + kx];
          #pragma unroll
          for (int tw = 0; tw < TW; tw++) acc[ic][tw] = fmaf(wv, q[KH - 1 - ky][tw + KW - 1 - kx], acc[ic][tw]);
        }
      }
    }`
    : `    #pragma unroll
    for (int ky = 0; ky < KH; ky++) {
      const int ty = iy + PH - ky;
      if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
      #pragma unroll
      for (int kx = 0; kx < KW; kx++) {
        const int tx2 = ix0 + PW - kx;
        if (tx2 < 0 || tx2 % SW != 0 || tx2 / SW >= OW) continue;
        const int oy = ty / SH, ox = tx2 / SW;
        float g = 0.f;
        ${dzAt('oy', 'ox').replace('DZV', 'g')}
        #pragma unroll
        for (int ic = 0; ic < ICT; ic++) acc[ic][0] = fmaf(sw[((o * ICT + ic) * KH + ky) * KW + kx], g, acc[ic][0]);
      }
    }`;
  const code = `  constexpr int ICT = ${ICT}, TW = ${TW}, TX = ${TX}, WS = ${WS};
  __shared__ float sw[WS];
  const int cg = BY;
  for (int i = threadIdx.x; i < WS; i += blockDim.x) {
    const int o = i / (ICT * KH * KW), rem = i % (ICT * KH * KW);
    sw[i] = w[((size_t)o * C + cg * ICT + rem / (KH * KW)) * KH * KW + rem % (KH * KW)];
  }
  __syncthreads();
  const int t = BX * blockDim.x + threadIdx.x;
  if (t >= B * H * TX) return;
  const int tx = t % TX, iy = (t / TX) % H, b = t / (TX * H);
  const int ix0 = tx * TW;
  float acc[ICT][TW];
  #pragma unroll
  for (int ic = 0; ic < ICT; ic++) {
    #pragma unroll
    for (int j = 0; j < TW; j++) acc[ic][j] = 0.f;
  }
  #pragma unroll 2
  for (int o = 0; o < O; o++) {
${body}
  }
  #pragma unroll
  for (int ic = 0; ic < ICT; ic++) {
    #pragma unroll
    for (int j = 0; j < TW; j++) {
      const size_t at = ((size_t)(b * C + cg * ICT + ic) * H + iy) * W + ix0 + j;
      out[at] = (base ? base[at] : 0.f) + acc[ic][j];
    }
  }
`;
  return { body: code, ICT, TW, TX };
}

/**
 * A conv's whole backward in one launch: blocks [0, nw) compute the weight-gradient partials
 * (block = out channel, channel group, batch split), the rest the input gradient, so the two
 * share the GPU instead of running one after the other.
 */
export function convBwd(
  s: ConvShape,
  ep: Epilogue,
  refBatch: number,
  dzGiven = false,
): KernelSrc & { ICT: number; TX: number; NCG: number } {
  const w = wgradBody(s, ep);
  // dzGiven: the input-gradient part reads dZ materialised by poolScatter (see there)
  const d = dgradBody(s, dzGiven ? { act: 'none', pool: null, C: ep.C, H: ep.H, W: ep.W } : ep, refBatch);
  const { NCG, NOG } = wgradGroup(s, !!ep.pool);
  const code = `// conv2d ${s.C}->${s.O} ${s.H}x${s.W} k${s.KH}x${s.KW} s${s.SH}x${s.SW} p${s.PH}x${s.PW}${ep.act !== 'none' ? ' after ' + actLabel(ep.act) : ''}${ep.pool ? ' and maxpool' : ''} backward:
// weight-gradient partials (${w.CG}-channel groups) and input gradient (${d.ICT} input channels x ${d.TW} pixels per thread) in one grid
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx,
    const float* __restrict__ x, const unsigned* __restrict__ rows, const TkScalars* __restrict__ sc, float* __restrict__ part, int SB, int nw,
    const float* __restrict__ w, const float* base, float* out, int dgx, const float* __restrict__ dz, int B) {
${CONV_CONSTS(s)}
  if ((int)blockIdx.x < nw) {
    const int BX = blockIdx.x % ${NOG}, BY = (blockIdx.x / ${NOG}) % ${NCG}, BZ = blockIdx.x / (${NOG} * ${NCG});
    (void)w; (void)base; (void)out; (void)dgx; (void)dz;
${w.body}  } else {
    const int bid = blockIdx.x - nw;
    const int BX = bid % dgx, BY = bid / dgx;
    (void)x; (void)part; (void)SB; (void)rows; (void)sc; (void)dz;
${dzGiven ? '    const float* __restrict__ gout = dz;\n' : ''}${d.body}  }
}
`;
  return { kind: 'conv_bwd', code, ICT: d.ICT, TX: d.TX, NCG };
}

/**
 * dZ of a conv whose act + max-pool (windows tiling the output exactly) are fused: one thread
 * per pooled output writes its window (the gradient at the argmax, zeros elsewhere), so the
 * input-gradient taps read dZ instead of recomputing it per tap.
 */
export function poolScatter(ep: Epilogue): KernelSrc {
  const p = ep.pool;
  if (!p || ep.H !== p.oh * p.kh || ep.W !== p.ow * p.kw) throw new Error('internal: poolScatter needs pool windows that tile the output');
  const code = `// gradient through ${actLabel(ep.act)} and maxpool${p.kh}x${p.kw} scattered back to the [${ep.C},${ep.H},${ep.W}] pre-activation
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx, float* __restrict__ dz, int B) {
  constexpr int C = ${ep.C}, H = ${ep.H}, W = ${ep.W}, PKH = ${p.kh}, PKW = ${p.kw}, POH = ${p.oh}, POW = ${p.ow};
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= B * C * POH * POW) return;
  const int px = j % POW, py = (j / POW) % POH, bc = j / (POW * POH);
  const float yv = yout[j];
  const float g = gout[j] * ${actGradExpr(ep.act, 'yv')};
  const int at = idx[j];
  float* d = dz + ((size_t)bc * H + py * PKH) * W + px * PKW;
  #pragma unroll
  for (int i = 0; i < PKH; i++) {
    #pragma unroll
    for (int k = 0; k < PKW; k++) d[i * W + k] = (i * PKW + k == at) ? g : 0.f;
  }
}
`;
  return { kind: 'pool_scatter', code };
}

// ------------------------------------------------------------------ linear

export function linearFwd(inF: number, outF: number, bias: boolean, act: Act): KernelSrc {
  const code = `// linear ${inF}->${outF}${bias ? ' +bias' : ''}${act !== 'none' ? ' +' + actLabel(act) : ''}: one warp per output
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y, int B) {
  constexpr int I = ${inF}, O = ${outF};
  (void)bias;
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (warp >= B * O) return;
  const int b = warp / O, o = warp % O;
  const float* xr = x + (size_t)b * I;
  const float* wr = w + (size_t)o * I;
  float s = 0.f;
  for (int i = lane; i < I; i += 32) s = fmaf(__ldg(xr + i), __ldg(wr + i), s);
  #pragma unroll
  for (int m = 16; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
  if (lane == 0) {
    const float v = s${bias ? ' + bias[o]' : ''};
    y[warp] = ${actExpr(act, 'v')};
  }
}
`;
  return { kind: 'linear_fwd', code };
}

/** One launch, three thread ranges: dW [O×I], db [O], dX [B×I] (when wanted); dZ = gout·act'(y) on the fly. */
export function linearBwd(inF: number, outF: number, bias: boolean, act: Act): KernelSrc {
  const dzAt = act === 'none' ? 'gout[(bb) * O + o]' : `(gout[(bb) * O + o] * ${actGradExpr(act, 'y[(bb) * O + o]')})`;
  const code = `// linear ${inF}->${outF}${act !== 'none' ? ' after ' + actLabel(act) : ''} backward: weight, bias and input gradients in one launch
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ y, const float* __restrict__ x, const float* __restrict__ w,
    float* __restrict__ gw, float* __restrict__ gb, int accumulate, const float* dxbase, float* dx, int B) {
  constexpr int I = ${inF}, O = ${outF};
  constexpr bool HAS_BIAS = ${bias};
  (void)y; (void)gb;
#define DZ(bb) ${dzAt}
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t < O * I) {
    const int o = t / I, i = t % I;
    float s = 0.f;
    for (int b = 0; b < B; b++) s = fmaf(DZ(b), x[(size_t)b * I + i], s);
    gw[t] = accumulate ? gw[t] + s : s;
    return;
  }
  t -= O * I;
  if (t < O) {
    if (HAS_BIAS) {
      const int o = t;
      float s = 0.f;
      for (int b = 0; b < B; b++) s += DZ(b);
      gb[o] = accumulate ? gb[o] + s : s;
    }
    return;
  }
  t -= O;
  if (dx && t < B * I) {
    const int b = t / I, i = t % I;
    float s = 0.f;
    for (int o = 0; o < O; o++) s = fmaf(DZ(b), w[(size_t)o * I + i], s);
    dx[t] = (dxbase ? dxbase[t] : 0.f) + s;
  }
#undef DZ
}
`;
  return { kind: 'linear_bwd', code };
}

// ------------------------------------------------------------------ batchnorm

const LAST_BLOCK = `  __shared__ bool tk_last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned nb = gridDim.x * gridDim.y * gridDim.z;
    tk_last = atomicInc(counter, nb - 1) == nb - 1;
  }
  __syncthreads();
  if (!tk_last) return;
  __threadfence();`;

/** Block-wide fixed-order sum of NV doubles `v[]`; the totals land in tot[] (shared), valid after the call. */
function blockSumDoubles(nv: number): string {
  return `  {
    __shared__ double tk_red[${nv}][${THREADS / 32}];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int k = 0; k < ${nv}; k++) {
      double s = v[k];
      #pragma unroll
      for (int m = 16; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
      if (lane == 0) tk_red[k][warp] = s;
    }
    __syncthreads();
    if (threadIdx.x < ${nv}) {
      double s = 0.0;
      for (int k = 0; k < ${THREADS / 32}; k++) s += tk_red[threadIdx.x][k];
      tot[threadIdx.x] = s;
    }
    __syncthreads();
  }`;
}

/** Train-mode batch statistics: per-(channel, split) partial sums in double, the last block finalises mean/invstd and updates the running stats. */
/** invstd and the running statistics of channel k from its batch mean and variance (the formulas of src/ops/batchnorm.ts). */
function bnFinish(eps: number, momentum: number): string {
  const b = bnStatsC({
    mean: 'mean',
    variance: 'var',
    n: '(double)N',
    eps: dlit(eps),
    momentum: dlit(momentum),
    rmean: '(double)rmean[k]',
    rvar: '(double)rvar[k]',
  });
  return `    invstd_out[k] = (float)(${b.invstd});
    rmean[k] = (float)(${b.rmean});
    rvar[k] = (float)(${b.rvar});`;
}

export function bnStats(C: number, HW: number, eps: number, momentum: number): KernelSrc {
  const code = `// batchnorm2d(${C}) over ${HW} pixels: batch mean and biased variance (float64 sums), running stats update, num_batches_tracked += 1
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ z, double* __restrict__ part, int B, int S,
    float* __restrict__ mean_out, float* __restrict__ invstd_out, float* __restrict__ rmean, float* __restrict__ rvar, long long* __restrict__ nbt, unsigned* counter) {
  constexpr int C = ${C}, HW = ${HW};
  const int c = blockIdx.x, s = blockIdx.y;
  const int N = B * HW, chunk = (N + S - 1) / S;
  const int e0 = s * chunk, e1 = min(N, e0 + chunk);
  double v[2] = {0.0, 0.0};
  for (int e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const double a = z[((size_t)(e / HW) * C + c) * HW + e % HW];
    v[0] += a;
    v[1] += a * a;
  }
  __shared__ double tot[2];
${blockSumDoubles(2)}
  if (threadIdx.x == 0) { part[c * S + s] = tot[0]; part[(C + c) * S + s] = tot[1]; }
${LAST_BLOCK}
  for (int k = threadIdx.x; k < C; k += blockDim.x) {
    double a = 0.0, q = 0.0;
    for (int j = 0; j < S; j++) { a += ((volatile double*)part)[k * S + j]; q += ((volatile double*)part)[(C + k) * S + j]; }
    const double mean = a / N;
    double var = q / N - mean * mean;
    if (var < 0.0) var = 0.0;
    mean_out[k] = (float)mean;
${bnFinish(eps, momentum)}
  }
  if (threadIdx.x == 0) nbt[0] += 1;
}
`;
  return { kind: 'bn_stats', code };
}

/** y = act(gamma·(z − mean)·invstd + beta) [then non-overlapping maxpool]; train: saved batch stats, eval: running stats. */
export function bnApply(ep: Epilogue, eps: number, train: boolean): KernelSrc {
  const { C, H, W } = ep;
  const HW = H * W;
  // eval: `invstd` holds running_var
  const stats = train
    ? `const float mu = mean[c], is = invstd[c];`
    : `const float mu = mean[c], is = ${bnMath.invstd(cArith, 'invstd[c]', lit(eps))};`;
  let body: string;
  if (!ep.pool) {
    body = `  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * HW) return;
  const int c = (e / HW) % C;
  ${stats}
  const float v = fmaf((z[e] - mu) * is, gamma[c], beta[c]);
  y[e] = ${actExpr(ep.act, 'v')}${ep.add ? ' + other[e]' : ''};`;
  } else {
    const p = ep.pool;
    body = `  constexpr int PH = ${p.kh}, PW = ${p.kw}, POH = ${p.oh}, POW = ${p.ow};
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * POH * POW) return;
  const int px = e % POW, py = (e / POW) % POH, c = (e / (POW * POH)) % C, b = e / (POW * POH * C);
  ${stats}
  const float g = gamma[c], bt = beta[c];
  float best = 0.f; int bi = -1;
  #pragma unroll
  for (int i = 0; i < PH; i++) {
    #pragma unroll
    for (int j = 0; j < PW; j++) {
      const float u = fmaf((z[((size_t)(b * C + c) * H + py * PH + i) * W + px * PW + j] - mu) * is, g, bt);
      const float v = ${actExpr(ep.act, 'u')};
      if (bi < 0 || v > best || isnan(v)) { best = v; bi = i * PW + j; }
    }
  }
  y[e] = best;
  if (idx) idx[e] = (unsigned char)bi;`;
  }
  if (ep.add && ep.pool) throw new Error('internal: a fused add after a fused pool');
  const code = `// batchnorm2d(${C}) ${train ? 'train (batch stats)' : 'eval (running stats)'} apply${ep.act !== 'none' ? ' +' + actLabel(ep.act) : ''}${ep.pool ? ` +maxpool${ep.pool.kh}x${ep.pool.kw}` : ''}${ep.add ? ' +residual add' : ''} on [${C},${H},${W}]
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ z, const float* __restrict__ mean, const float* __restrict__ invstd,
    const float* __restrict__ gamma, const float* __restrict__ beta, const float* __restrict__ other, float* __restrict__ y, unsigned char* __restrict__ idx, int B) {
  constexpr int C = ${C}, H = ${H}, W = ${W}, HW = ${HW};
  (void)H; (void)W; (void)HW; (void)idx; (void)other;
${body}
}
`;
  return { kind: train ? 'bn_apply' : 'bn_eval', code };
}

/** Backward partial sums Σ dY and Σ dY·x̂ per channel; the last block finalises them and writes dgamma, dbeta. */
export function bnBwdStats(ep: Epilogue): KernelSrc {
  const { C, H, W } = ep;
  const code = `// batchnorm2d(${C}) backward${ep.act !== 'none' ? ' after ' + actLabel(ep.act) : ''}${ep.pool ? ' and maxpool' : ''}${ep.add ? ' (residual add fused)' : ''}: sums of dy and dy*xhat per channel (float64)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx,
    const float* __restrict__ z, const float* __restrict__ mean, const float* __restrict__ invstd, const float* __restrict__ gamma, const float* __restrict__ beta,
    double* __restrict__ part, int B, int S, double* __restrict__ sums, float* __restrict__ ggamma, float* __restrict__ gbeta, int accumulate, unsigned* counter) {
  constexpr int C = ${C}, H = ${H}, W = ${W}, HW = ${H * W};
  (void)yout; (void)idx; (void)gamma; (void)beta;
  const int c = blockIdx.x, s = blockIdx.y;
  const int N = B * HW, chunk = (N + S - 1) / S;
  const int e0 = s * chunk, e1 = min(N, e0 + chunk);
  const float mu = mean[c], is = invstd[c];
  double v[2] = {0.0, 0.0};
  for (int e = e0 + threadIdx.x; e < e1; e += blockDim.x) {
    const int b = e / HW, hw = e % HW, yh = hw / W, xw = hw % W;
    const size_t flat = ((size_t)b * C + c) * HW + hw;
    (void)yh; (void)xw;
    ${preGradCode(ep, 'b', 'c', 'yh', 'xw', 'flat')}
    const float xh = (z[flat] - mu) * is;
    v[0] += gz;
    v[1] += (double)gz * xh;
  }
  __shared__ double tot[2];
${blockSumDoubles(2)}
  if (threadIdx.x == 0) { part[c * S + s] = tot[0]; part[(C + c) * S + s] = tot[1]; }
${LAST_BLOCK}
  for (int k = threadIdx.x; k < C; k += blockDim.x) {
    double a = 0.0, q = 0.0;
    for (int j = 0; j < S; j++) { a += ((volatile double*)part)[k * S + j]; q += ((volatile double*)part)[(C + k) * S + j]; }
    sums[k] = a;
    sums[C + k] = q;
    ggamma[k] = accumulate ? ggamma[k] + (float)q : (float)q;
    gbeta[k] = accumulate ? gbeta[k] + (float)a : (float)a;
  }
}
`;
  return { kind: 'bn_bwd_stats', code };
}

export function bnBwdApply(ep: Epilogue): KernelSrc {
  const { C, H, W } = ep;
  const code = `// batchnorm2d(${C}) backward${ep.act !== 'none' ? ' after ' + actLabel(ep.act) : ''}${ep.pool ? ' and maxpool' : ''}${ep.add ? ' (residual add fused)' : ''}: dz = gamma*invstd*(dy - (sum(dy) + xhat*sum(dy*xhat))/N)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx,
    const float* __restrict__ z, const float* __restrict__ mean, const float* __restrict__ invstd, const float* __restrict__ gamma, const float* __restrict__ beta,
    const double* __restrict__ sums, const float* base, float* out, int B) {
  constexpr int C = ${C}, H = ${H}, W = ${W}, HW = ${H * W};
  (void)yout; (void)idx; (void)beta;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * HW) return;
  const int hw = e % HW, c = (e / HW) % C, b = e / (HW * C), yh = hw / W, xw = hw % W;
  (void)yh; (void)xw; (void)b;
  ${preGradCode(ep, 'b', 'c', 'yh', 'xw', 'e')}
  const float is = invstd[c];
  const float xh = (z[e] - mean[c]) * is;
  const double n = (double)B * HW;
  const float corr = (float)((sums[c] + (double)xh * sums[C + c]) / n);
  out[e] = (base ? base[e] : 0.f) + gamma[c] * is * (gz - corr);
}
`;
  return { kind: 'bn_bwd_apply', code };
}

/** Eval-mode backward: the running statistics are constants, so dz = gamma·invstd·dY (input gradient only). `invstd` holds running_var. */
export function bnBwdEval(ep: Epilogue, eps: number): KernelSrc {
  const { C, H, W } = ep;
  const code = `// batchnorm2d(${C}) eval-mode backward${ep.act !== 'none' ? ' after ' + actLabel(ep.act) : ''}${ep.pool ? ' and maxpool' : ''}${ep.add ? ' (residual add fused)' : ''}: dz = gamma*invstd*dy with the running statistics
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx,
    const float* __restrict__ z, const float* __restrict__ mean, const float* __restrict__ invstd, const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* base, float* out, int B) {
  constexpr int C = ${C}, H = ${H}, W = ${W}, HW = ${H * W};
  (void)yout; (void)idx; (void)beta; (void)z; (void)mean;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * HW) return;
  const int hw = e % HW, c = (e / HW) % C, b = e / (HW * C), yh = hw / W, xw = hw % W;
  (void)yh; (void)xw; (void)b;
  const float is = ${bnMath.invstd(cArith, 'invstd[c]', lit(eps))};
  ${preGradCode(ep, 'b', 'c', 'yh', 'xw', 'e', 'is')}
  out[e] = (base ? base[e] : 0.f) + gamma[c] * is * gz;
}
`;
  return { kind: 'bn_bwd_eval', code };
}

// ------------------------------------------------------------------ pooling (standalone)

export interface PoolShape {
  C: number;
  H: number;
  W: number;
  OH: number;
  OW: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  /** average pooling: padding counts in the divisor (PyTorch's default) */
  countIncludePad: boolean;
}

/** The divisor of an average-pool window at (oy, ox), as C: KH·KW, or the in-range count. */
function avgDivisor(s: PoolShape): string {
  if (s.countIncludePad || (s.ph === 0 && s.pw === 0)) return `${lit(s.kh * s.kw)}`;
  return `(float)((min(oy * SH - PH + KH, H) - max(oy * SH - PH, 0)) * (min(ox * SW - PW + KW, W) - max(ox * SW - PW, 0)))`;
}

export function poolFwd(op: 'max' | 'avg', s: PoolShape): KernelSrc {
  const inner = op === 'max' ? `if (at < 0 || v > best || isnan(v)) { best = v; at = iy * W + ix; }` : `best += v;`;
  const code = `// ${op}pool2d k${s.kh}x${s.kw} s${s.sh}x${s.sw} p${s.ph}x${s.pw} on [${s.C},${s.H},${s.W}]
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, float* __restrict__ y, int* __restrict__ idx, int B) {
  constexpr int C = ${s.C}, H = ${s.H}, W = ${s.W}, OH = ${s.OH}, OW = ${s.OW}, KH = ${s.kh}, KW = ${s.kw}, SH = ${s.sh}, SW = ${s.sw}, PH = ${s.ph}, PW = ${s.pw};
  (void)idx;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * OH * OW) return;
  const int ox = e % OW, oy = (e / OW) % OH, bc = e / (OW * OH);
  const float* xp = x + (size_t)bc * H * W;
  float best = ${op === 'max' ? '0.f' : '0.f'}; int at = -1;
  #pragma unroll
  for (int ky = 0; ky < KH; ky++) {
    const int iy = oy * SH - PH + ky;
    if (iy < 0 || iy >= H) continue;
    #pragma unroll
    for (int kx = 0; kx < KW; kx++) {
      const int ix = ox * SW - PW + kx;
      if (ix < 0 || ix >= W) continue;
      const float v = xp[iy * W + ix];
      ${inner}
    }
  }
  ${op === 'max' ? 'y[e] = best;\n  if (idx) idx[e] = at;' : `y[e] = best / ${avgDivisor(s)};\n  (void)at;`}
}
`;
  return { kind: `${op}pool_fwd`, code };
}

export function poolBwd(op: 'max' | 'avg', s: PoolShape): KernelSrc {
  const take =
    op === 'max'
      ? `if (idx[j] == iy * W + ix) g += gout[j];`
      : `{ const int oy = ty / SH, ox = tx / SW; g += gout[j] / ${avgDivisor(s)}; }`;
  const code = `// ${op}pool2d k${s.kh}x${s.kw} s${s.sh}x${s.sw} p${s.ph}x${s.pw} on [${s.C},${s.H},${s.W}] backward, gathered per input element
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const int* __restrict__ idx, const float* base, float* out, int B) {
  constexpr int C = ${s.C}, H = ${s.H}, W = ${s.W}, OH = ${s.OH}, OW = ${s.OW}, KH = ${s.kh}, KW = ${s.kw}, SH = ${s.sh}, SW = ${s.sw}, PH = ${s.ph}, PW = ${s.pw};
  (void)idx;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * H * W) return;
  const int ix = e % W, iy = (e / W) % H, bc = e / (W * H);
  float g = 0.f;
  #pragma unroll
  for (int ky = 0; ky < KH; ky++) {
    const int ty = iy + PH - ky;
    if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
    #pragma unroll
    for (int kx = 0; kx < KW; kx++) {
      const int tx = ix + PW - kx;
      if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
      const int j = (bc * OH + ty / SH) * OW + tx / SW;
      ${take}
    }
  }
  out[e] = (base ? base[e] : 0.f) + g;
}
`;
  return { kind: `${op}pool_bwd`, code };
}

// ------------------------------------------------------------------ elementwise

export function actFwd(act: Act, n: number): KernelSrc {
  const code = `// ${actLabel(act)} on ${n} values per sample
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, float* __restrict__ y, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  const float v = x[e];
  y[e] = ${actExpr(act, 'v')};
}
`;
  return { kind: `${actLabel(act)}_fwd`, code };
}

/** v is the act's output (fromY) or its input. */
export function actBwd(act: Act, n: number, fromY: boolean): KernelSrc {
  const code = `// ${actLabel(act)} backward on ${n} values per sample, from its ${fromY ? 'output' : 'input'}
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ v, const float* base, float* out, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  const float yv = v[e];
  out[e] = (base ? base[e] : 0.f) + gout[e] * ${fromY ? actGradExpr(act, 'yv') : actInputGradExpr(act, 'yv')};
}
`;
  return { kind: `${actLabel(act)}_bwd`, code };
}

export function addFwd(n: number): KernelSrc {
  const code = `// add on ${n} values per sample
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  y[e] = a[e] + b[e];
}
`;
  return { kind: 'add_fwd', code };
}

/** out = base + src (an identity gradient contribution onto an existing one). */
export function accumulate(n: number): KernelSrc {
  const code = `// gradient sum on ${n} values per sample
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* base, const float* __restrict__ src, float* out, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  out[e] = base[e] + src[e];
}
`;
  return { kind: 'grad_sum', code };
}

// ------------------------------------------------------------------ broadcast arithmetic, concat, softmax

/** Output [D0, D1, D2] per sample, operand strides (0 where it stretches) and sizes: see src/ops/binary.ts. */
export interface BroadcastShape {
  dims: [number, number, number];
  sa: [number, number, number];
  sb: [number, number, number];
  na: number;
  nb: number;
}

const BIN_EXPR = {
  add: (a: string, b: string) => `${a} + ${b}`,
  sub: (a: string, b: string) => `${a} - ${b}`,
  mul: (a: string, b: string) => `${a} * ${b}`,
};

function broadcastIndex(g: BroadcastShape, which: 'a' | 'b', i0: string, i1: string, i2: string): string {
  const s = which === 'a' ? g.sa : g.sb;
  return [`${i0} * ${s[0]}`, `${i1} * ${s[1]}`, `${i2} * ${s[2]}`].filter((t) => !t.endsWith(' * 0')).join(' + ') || '0';
}

/** y = a ∘ b with per-sample broadcasting; one thread per output element. */
export function binaryFwd(fn: 'add' | 'sub' | 'mul', g: BroadcastShape): KernelSrc {
  const [D0, D1, D2] = g.dims;
  const N = D0 * D1 * D2;
  const code = `// ${fn} [${g.dims}] with broadcast strides a (${g.sa}) b (${g.sb})
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ y, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${N}) return;
  const int s = e / ${N}, i = e % ${N}, i2 = i % ${D2}, i1 = (i / ${D2}) % ${D1}, i0 = i / ${D1 * D2};
  (void)i0; (void)i1; (void)i2;
  const float u = a[s * ${g.na} + ${broadcastIndex(g, 'a', 'i0', 'i1', 'i2')}], v = b[s * ${g.nb} + ${broadcastIndex(g, 'b', 'i0', 'i1', 'i2')}];
  y[e] = ${BIN_EXPR[fn]('u', 'v')};
}
`;
  return { kind: `${fn}_bcast_fwd`, code };
}

/**
 * Gradient of operand `side` (0: a, 1: b): one thread per element of that operand,
 * summing over the output positions that read it (a fixed order: deterministic).
 */
export function binaryBwd(fn: 'add' | 'sub' | 'mul', g: BroadcastShape, side: 0 | 1): KernelSrc {
  const [D0, D1, D2] = g.dims;
  const N = D0 * D1 * D2;
  const mine = side === 0 ? g.sa : g.sb;
  const n = side === 0 ? g.na : g.nb;
  // the operand's own index space: the dims where its stride is not 0
  const sizes = g.dims.map((d, k) => (mine[k] === 0 ? 1 : d));
  const factor = fn === 'mul' ? (side === 0 ? 'b[s * NB + ib]' : 'a[s * NA + ia]') : fn === 'sub' && side === 1 ? '-1.f' : '1.f';
  const code = `// d${side === 0 ? 'a' : 'b'} of ${fn} [${g.dims}] with broadcast strides a (${g.sa}) b (${g.sb})
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ a, const float* __restrict__ b, const float* base, float* out, int B) {
  constexpr int NA = ${g.na}, NB = ${g.nb};
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  const int s = e / ${n}, r = e % ${n};
  const int j0 = r / ${sizes[1] * sizes[2]}, j1 = (r / ${sizes[2]}) % ${sizes[1]}, j2 = r % ${sizes[2]};
  float acc = 0.f;
  for (int i0 = ${mine[0] === 0 ? '0' : 'j0'}; i0 < ${mine[0] === 0 ? D0 : 'j0 + 1'}; i0++)
    for (int i1 = ${mine[1] === 0 ? '0' : 'j1'}; i1 < ${mine[1] === 0 ? D1 : 'j1 + 1'}; i1++)
      for (int i2 = ${mine[2] === 0 ? '0' : 'j2'}; i2 < ${mine[2] === 0 ? D2 : 'j2 + 1'}; i2++) {
        const int ia = ${broadcastIndex(g, 'a', 'i0', 'i1', 'i2')}, ib = ${broadcastIndex(g, 'b', 'i0', 'i1', 'i2')};
        (void)ia; (void)ib; (void)NA; (void)NB;
        acc += gout[s * ${N} + (i0 * ${D1} + i1) * ${D2} + i2] * ${factor};
      }
  out[e] = (base ? base[e] : 0.f) + acc;
}
`;
  return { kind: `${fn}_bcast_bwd`, code };
}

/**
 * A block of LEN values per sample at offset OFF of an N-value sample (torch.cat):
 * 'in' copies x [B, LEN] into y [B, N]; 'out' takes the block's gradient: out = base + gy[block].
 */
export function sliceCopy(N: number, len: number, off: number, dir: 'in' | 'out'): KernelSrc {
  const code =
    dir === 'in'
      ? `// torch.cat: copy [B, ${len}] into [B, ${N}] at ${off}
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, const float* base, float* __restrict__ y, int B) {
  (void)base;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${len}) return;
  y[(e / ${len}) * ${N} + ${off} + e % ${len}] = x[e];
}
`
      : `// torch.cat backward: the gradient of the [B, ${len}] block at ${off} of [B, ${N}]
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* base, float* out, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${len}) return;
  out[e] = (base ? base[e] : 0.f) + gout[(e / ${len}) * ${N} + ${off} + e % ${len}];
}
`;
  return { kind: dir === 'in' ? 'cat_fwd' : 'cat_bwd', code };
}

/** softmax / log-softmax over N features; one thread per sample (N is a classifier's width). */
export function softmaxFwd(N: number, log: boolean): KernelSrc {
  const code = `// ${log ? 'log_softmax' : 'softmax'} over ${N} features, one thread per sample
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, float* __restrict__ y, int B) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const float* xb = x + (size_t)b * ${N};
  float m = xb[0];
  for (int i = 1; i < ${N}; i++) m = fmaxf(m, xb[i]);
  float s = 0.f;
  for (int i = 0; i < ${N}; i++) s += expf(xb[i] - m);
  ${
    log
      ? `const float l = m + logf(s);
  for (int i = 0; i < ${N}; i++) y[(size_t)b * ${N} + i] = xb[i] - l;`
      : `for (int i = 0; i < ${N}; i++) y[(size_t)b * ${N} + i] = expf(xb[i] - m) / s;`
  }
}
`;
  return { kind: log ? 'log_softmax_fwd' : 'softmax_fwd', code };
}

export function softmaxBwd(N: number, log: boolean): KernelSrc {
  const code = `// ${log ? 'log_softmax' : 'softmax'} backward over ${N} features, from the output y
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ y, const float* base, float* out, int B) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= B) return;
  const size_t o = (size_t)b * ${N};
  float s = 0.f;
  for (int i = 0; i < ${N}; i++) s += ${log ? 'gout[o + i]' : 'gout[o + i] * y[o + i]'};
  for (int i = 0; i < ${N}; i++) out[o + i] = (base ? base[o + i] : 0.f) + ${log ? 'gout[o + i] - expf(y[o + i]) * s' : 'y[o + i] * (gout[o + i] - s)'};
}
`;
  return { kind: log ? 'log_softmax_bwd' : 'softmax_bwd', code };
}

// ------------------------------------------------------------------ grouped / dilated convolution (direct)

export interface ConvgAttrs {
  dh: number;
  dw: number;
  groups: number;
}

function convgConsts(s: ConvShape, a: ConvgAttrs): string {
  return `constexpr int C = ${s.C}, H = ${s.H}, W = ${s.W}, O = ${s.O}, OH = ${s.OH}, OW = ${s.OW}, KH = ${s.KH}, KW = ${s.KW}, SH = ${s.SH}, SW = ${s.SW}, PH = ${s.PH}, PW = ${s.PW}, DH = ${a.dh}, DW = ${a.dw}, G = ${a.groups}, CG = C / G, OG = O / G;`;
}

/** Grouped/dilated conv + act (+ non-overlapping max pool): one thread per stored output. */
export function convgFwd(s: ConvShape, a: ConvgAttrs, ep: Epilogue): KernelSrc {
  const p = ep.pool;
  const PKH = p ? p.kh : 1;
  const PKW = p ? p.kw : 1;
  const YH = p ? p.oh : s.OH;
  const YW = p ? p.ow : s.OW;
  const code = `// conv2d ${s.C}->${s.O} k${s.KH}x${s.KW} s${s.SH}x${s.SW} p${s.PH}x${s.PW} dilation ${a.dh}x${a.dw} groups ${a.groups}${ep.act !== 'none' ? ' +' + actLabel(ep.act) : ''}${p ? ` +maxpool${p.kh}x${p.kw}` : ''} (direct)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ y, unsigned char* __restrict__ idx, int B) {
  ${convgConsts(s, a)}
  (void)idx;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * O * ${YH * YW}) return;
  const int yx = e % ${YW}, yy = (e / ${YW}) % ${YH}, o = (e / ${YH * YW}) % O, b = e / (O * ${YH * YW});
  const float* xb = x + ((size_t)b * C + (o / OG) * CG) * H * W;
  float best = 0.f; int at = -1;
  for (int py = 0; py < ${PKH}; py++)
    for (int px = 0; px < ${PKW}; px++) {
      const int oy = yy * ${PKH} + py, ox = yx * ${PKW} + px;
      float acc = bias ? bias[o] : 0.f;
      for (int ic = 0; ic < CG; ic++)
        for (int ky = 0; ky < KH; ky++) {
          const int iy = oy * SH - PH + ky * DH;
          if (iy < 0 || iy >= H) continue;
          for (int kx = 0; kx < KW; kx++) {
            const int ix = ox * SW - PW + kx * DW;
            if (ix < 0 || ix >= W) continue;
            acc = fmaf(w[((o * CG + ic) * KH + ky) * KW + kx], xb[((size_t)ic * H + iy) * W + ix], acc);
          }
        }
      const float v = ${actExpr(ep.act, 'acc')};
      if (at < 0 || v > best || isnan(v)) { best = v; at = py * ${PKW} + px; }
    }
  y[e] = best;
  ${p ? 'if (idx) idx[e] = (unsigned char)at;' : '(void)at;'}
}
`;
  return { kind: 'convg_fwd', code };
}

/** dZ at pre-activation (b, o, oy, ox) of a direct conv group, from the stored output's gradient. */
function convgDz(ep: Epilogue, YH: number, YW: number): string {
  const p = ep.pool;
  if (!p)
    return `const size_t j = (((size_t)b * O + o) * OH + oy) * OW + ox; const float dz = ${ep.act === 'none' ? 'gout[j]' : `gout[j] * ${actGradExpr(ep.act, 'yout[j]')}`};`;
  return `float dz = 0.f; { const int yy = oy / ${p.kh}, yx = ox / ${p.kw}; if (yy < ${YH} && yx < ${YW}) { const size_t j = (((size_t)b * O + o) * ${YH} + yy) * ${YW} + yx; if ((int)idx[j] == (oy - yy * ${p.kh}) * ${p.kw} + (ox - yx * ${p.kw})) dz = ${ep.act === 'none' ? 'gout[j]' : `gout[j] * ${actGradExpr(ep.act, 'yout[j]')}`}; } }`;
}

/** Weight and bias gradient of a direct conv: one thread per weight (then per bias) element, summing over batch and positions. */
export function convgWgrad(s: ConvShape, a: ConvgAttrs, ep: Epilogue): KernelSrc {
  const YH = ep.pool ? ep.pool.oh : s.OH;
  const YW = ep.pool ? ep.pool.ow : s.OW;
  const nw = s.O * (s.C / a.groups) * s.KH * s.KW;
  const code = `// conv2d ${s.C}->${s.O} dilation ${a.dh}x${a.dw} groups ${a.groups} weight/bias gradient (direct, deterministic)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx, const float* __restrict__ x, float* gw, float* gb, int acc, int B) {
  ${convgConsts(s, a)}
  (void)yout; (void)idx;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= ${nw} + (gb ? O : 0)) return;
  if (e >= ${nw}) {
    const int o = e - ${nw};
    float sum = 0.f;
    for (int b = 0; b < B; b++) for (int oy = 0; oy < OH; oy++) for (int ox = 0; ox < OW; ox++) { ${convgDz(ep, YH, YW)} sum += dz; }
    gb[o] = (acc ? gb[o] : 0.f) + sum;
    return;
  }
  const int kx = e % KW, ky = (e / KW) % KH, ic = (e / (KW * KH)) % CG, o = e / (KW * KH * CG);
  const int c = (o / OG) * CG + ic;
  float sum = 0.f;
  for (int b = 0; b < B; b++)
    for (int oy = 0; oy < OH; oy++) {
      const int iy = oy * SH - PH + ky * DH;
      if (iy < 0 || iy >= H) continue;
      for (int ox = 0; ox < OW; ox++) {
        const int ix = ox * SW - PW + kx * DW;
        if (ix < 0 || ix >= W) continue;
        ${convgDz(ep, YH, YW)}
        sum = fmaf(dz, x[(((size_t)b * C + c) * H + iy) * W + ix], sum);
      }
    }
  gw[e] = (acc ? gw[e] : 0.f) + sum;
}
`;
  return { kind: 'convg_wgrad', code };
}

/** Input gradient of a direct conv: one thread per input element, gathering the taps that read it. */
export function convgDgrad(s: ConvShape, a: ConvgAttrs, ep: Epilogue): KernelSrc {
  const YH = ep.pool ? ep.pool.oh : s.OH;
  const YW = ep.pool ? ep.pool.ow : s.OW;
  const code = `// conv2d ${s.C}->${s.O} dilation ${a.dh}x${a.dw} groups ${a.groups} input gradient (direct)
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* __restrict__ yout, const unsigned char* __restrict__ idx, const float* __restrict__ w, const float* base, float* out, int B) {
  ${convgConsts(s, a)}
  (void)yout; (void)idx;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * C * H * W) return;
  const int ix = e % W, iy = (e / W) % H, c = (e / (W * H)) % C, b = e / (W * H * C);
  const int g = c / CG, ic = c % CG;
  float sum = 0.f;
  for (int oo = 0; oo < OG; oo++) {
    const int o = g * OG + oo;
    for (int ky = 0; ky < KH; ky++) {
      const int ty = iy + PH - ky * DH;
      if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
      const int oy = ty / SH;
      for (int kx = 0; kx < KW; kx++) {
        const int tx = ix + PW - kx * DW;
        if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
        const int ox = tx / SW;
        ${convgDz(ep, YH, YW)}
        sum = fmaf(dz, w[((o * CG + ic) * KH + ky) * KW + kx], sum);
      }
    }
  }
  out[e] = (base ? base[e] : 0.f) + sum;
}
`;
  return { kind: 'convg_dgrad', code };
}

export interface DropoutSpec {
  n: number;
  C: number;
  p: number;
  channelwise: boolean;
  stream: number;
}

function dropoutKeep(d: DropoutSpec): string {
  // u = (h >> 8) / 2^24 >= p  <=>  (h >> 8) >= ceil(p * 2^24), exactly (p * 2^24 is exact in float64).
  const thr = Math.ceil(d.p * 16777216);
  const index = d.channelwise ? `(unsigned)(b * ${d.C} + i / ${d.n / d.C})` : `(unsigned)(b * ${d.n} + i)`;
  return `const int b = e / ${d.n}, i = e % ${d.n};
  (void)i;
  const bool keep = (tk_hash(seed, ${d.stream >>> 0}u, ${index}) >> 8) >= ${thr}u;`;
}

export function dropoutFwd(d: DropoutSpec): KernelSrc {
  const code = `// ${d.channelwise ? 'dropout2d' : 'dropout'} p=${d.p} (stream ${d.stream}) on ${d.n} values per sample; mask = tk_hash_uniform(seed, stream, index) >= p
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ x, float* __restrict__ y, const TkScalars* __restrict__ sc, const float* __restrict__ mask, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${d.n}) return;
  // a mask given from outside (PyTorch's, replayed by gen check) replaces the hash
  if (mask) { y[e] = x[e] * mask[e]; return; }
  const unsigned seed = tk_dropout_seed(sc);
  ${dropoutKeep(d)}
  y[e] = keep ? x[e] * ${lit(1 / (1 - d.p))} : 0.f;
}
`;
  return { kind: 'dropout_fwd', code };
}

export function dropoutBwd(d: DropoutSpec): KernelSrc {
  const code = `// ${d.channelwise ? 'dropout2d' : 'dropout'} p=${d.p} (stream ${d.stream}) backward
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ gout, const float* base, float* out, const TkScalars* __restrict__ sc, const float* __restrict__ mask, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${d.n}) return;
  if (mask) { out[e] = (base ? base[e] : 0.f) + gout[e] * mask[e]; return; }
  const unsigned seed = tk_dropout_seed(sc);
  ${dropoutKeep(d)}
  out[e] = (base ? base[e] : 0.f) + (keep ? gout[e] * ${lit(1 / (1 - d.p))} : 0.f);
}
`;
  return { kind: 'dropout_bwd', code };
}

// ------------------------------------------------------------------ data, loss, optimizer

export function gather(n: number): KernelSrc {
  const vec = n % 4 === 0;
  const per = vec ? n / 4 : n;
  const T = vec ? 'float4' : 'float';
  const code = `// gathers a batch of ${n}-value samples from the resident dataset in shuffle order
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ data, const int* __restrict__ labels, const unsigned* __restrict__ order,
    const TkScalars* __restrict__ sc, float* __restrict__ x, int* __restrict__ y, int B) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${per}) return;
  const int b = e / ${per}, i = e % ${per};
  const unsigned row = order[sc->cursor + b];
  reinterpret_cast<${T}*>(x)[e] = reinterpret_cast<const ${T}*>(data)[(size_t)row * ${per} + i];
  if (i == 0) y[b] = labels[row];
}
`;
  return { kind: 'gather', code };
}

/**
 * The gather with augmentation (src/data/augment.ts, as the CPU epoch's gather): sample b's window offset
 * and flip hash (step seed, b); outside the image, fill[c]. One thread per value.
 */
export function augmentGather(shape: readonly number[]): KernelSrc {
  const [C, H, W] = shape;
  const n = C * H * W;
  const code = `// gathers a batch of ${C}x${H}x${W} samples in shuffle order, randomly cropped (padding crop) and flipped
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ data, const int* __restrict__ labels, const unsigned* __restrict__ order,
    const TkScalars* __restrict__ sc, float* __restrict__ x, int* __restrict__ y, int B, int crop, int flip, const float* __restrict__ fill) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= B * ${n}) return;
  const int b = e / ${n}, i = e % ${n};
  const int c = i / ${H * W}, yy = (i / ${W}) % ${H}, xx = i % ${W};
  const unsigned row = order[sc->cursor + b];
  const unsigned seed = tk_dropout_seed(sc);
  const unsigned span = 2u * (unsigned)crop + 1u;
  const int oy = crop ? (int)tk_hash_below(seed, ${AUGMENT_STREAM}u, 3u * b, span) - crop : 0;
  const int ox = crop ? (int)tk_hash_below(seed, ${AUGMENT_STREAM}u, 3u * b + 1u, span) - crop : 0;
  const bool fl = flip && tk_hash_below(seed, ${AUGMENT_STREAM}u, 3u * b + 2u, 2u) == 1u;
  const int sy = yy + oy, sx = (fl ? ${W - 1} - xx : xx) + ox;
  x[e] = sy >= 0 && sy < ${H} && sx >= 0 && sx < ${W} ? data[(size_t)row * ${n} + (c * ${H} + sy) * ${W} + sx] : fill[c];
  if (i == 0) y[b] = labels[row];
}
`;
  return { kind: 'augment_gather', code };
}

/** Mean cross-entropy, its logits gradient, correct count; one block, fixed-order sums. */
/**
 * The loss of one sample from its K outputs z (max m, label) as statements:
 * adds the loss to v[0], writes d loss / d z to dz (which may be z itself).
 * The formulas are src/ops/loss.ts's; sc says which loss.
 */
function lossBody(z: string, dz: string): string {
  const l = lossC({ z: `(double)${z}[k]`, isLabel: '(k == label)', lse: 'lse', p: 'p', eps: 'eps', K: '(double)K', B: '(double)B' });
  return `    const double eps = sc->label_smoothing;
    (void)eps;
    if (sc->nll) {
      v[0] -= ${z}[label];
      for (int k = 0; k < K; k++) ${dz}[k] = (float)(${l.nllGrad});
    } else {
      double se = 0.0;
      for (int k = 0; k < K; k++) se += exp((double)${z}[k] - m);
      const double lse = (double)m + log(se);
      for (int k = 0; k < K; k++) {
        const double p = exp((double)${z}[k] - lse);
        v[0] += ${l.ce.term};
        ${dz}[k] = (float)(${l.ce.grad});
      }
    }`;
}

export function lossKernel(K: number): KernelSrc {
  const code = `// cross-entropy (mean over the batch) of ${K} logits: loss, dlogits = (softmax - onehot)/B, correct count
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ z, const int* __restrict__ labels, const unsigned* __restrict__ rows, float* __restrict__ dz, TkScalars* sc, int B) {
  constexpr int K = ${K};
  double v[2] = {0.0, 0.0};
  for (int b = threadIdx.x; b < B; b += blockDim.x) {
    const float* zr = z + (size_t)b * K;
    const int label = labels[rows ? rows[sc->cursor + b] : b];
    float m = zr[0];
    int arg = 0;
    #pragma unroll
    for (int k = 1; k < K; k++) if (zr[k] > m) { m = zr[k]; arg = k; }
    v[1] += arg == label ? 1.0 : 0.0;
${lossBody('zr', '(dz + (size_t)b * K)')}
  }
  __shared__ double tot[2];
${blockSumDoubles(2)}
  if (threadIdx.x == 0) {
    sc->loss_ce = tot[0] / B;
    sc->correct += (long long)tot[1];
  }
}
`;
  return { kind: 'loss', code };
}

/** Largest head (last linear) the one-block head kernel takes: batch·classes logits in shared memory, classes·inputs weights. */
export function headFits(maxBatch: number, inF: number, K: number): boolean {
  return maxBatch * K <= 4096 && K * inF <= 16384;
}

/**
 * The classifier head in one block: logits of the last linear (no act), mean cross-entropy,
 * correct count, dlogits, and that linear's backward (dW, db, dh), with the logits and
 * their gradient kept in shared memory.
 */
export function headKernel(inF: number, K: number, bias: boolean, maxBatch: number): KernelSrc {
  const code = `// head: linear ${inF}->${K}${bias ? ' +bias' : ''}, cross-entropy (mean), dlogits = (softmax - onehot)/B, and the linear's backward, in one block
__global__ void __launch_bounds__(${THREADS}) KNAME(const float* __restrict__ h, const float* __restrict__ w, const float* __restrict__ bias, float* __restrict__ z,
    const int* __restrict__ labels, const unsigned* __restrict__ rows, TkScalars* sc, float* __restrict__ gw, float* __restrict__ gb, int accumulate, const float* dhbase, float* dh, int B) {
  constexpr int I = ${inF}, K = ${K};
  constexpr bool HAS_BIAS = ${bias};
  (void)bias; (void)gb;
  __shared__ float sz[${maxBatch * K}];
  for (int e = threadIdx.x; e < B * K; e += blockDim.x) {
    const int b = e / K, k = e % K;
    float s = 0.f;
    for (int i = 0; i < I; i++) s = fmaf(h[(size_t)b * I + i], w[(size_t)k * I + i], s);
    ${bias ? 's += bias[k];' : ''}
    z[e] = s;
    sz[e] = s;
  }
  __syncthreads();
  double v[2] = {0.0, 0.0};
  for (int b = threadIdx.x; b < B; b += blockDim.x) {
    float* zr = sz + b * K;
    const int label = labels[rows ? rows[sc->cursor + b] : b];
    float m = zr[0];
    int arg = 0;
    for (int k = 1; k < K; k++) if (zr[k] > m) { m = zr[k]; arg = k; }
    v[1] += arg == label ? 1.0 : 0.0;
${lossBody('zr', 'zr')}
  }
  __shared__ double tot[2];
${blockSumDoubles(2)}
  if (threadIdx.x == 0) {
    sc->loss_ce = tot[0] / B;
    sc->correct += (long long)tot[1];
  }
  for (int e = threadIdx.x; e < K * I; e += blockDim.x) {
    const int k = e / I, i = e % I;
    float s = 0.f;
    for (int b = 0; b < B; b++) s = fmaf(sz[b * K + k], h[(size_t)b * I + i], s);
    gw[e] = accumulate ? gw[e] + s : s;
  }
  if (HAS_BIAS) {
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
      float s = 0.f;
      for (int b = 0; b < B; b++) s += sz[b * K + k];
      gb[k] = accumulate ? gb[k] + s : s;
    }
  }
  if (dh) {
    for (int e = threadIdx.x; e < B * I; e += blockDim.x) {
      const int b = e / I, i = e % I;
      float s = 0.f;
      for (int k = 0; k < K; k++) s = fmaf(sz[b * K + k], w[(size_t)k * I + i], s);
      dh[e] = (dhbase ? dhbase[e] : 0.f) + s;
    }
  }
}
`;
  return { kind: 'head', code };
}

export const SGD_ITEMS = 4;

/** A conv parameter pair whose gradient the SGD kernel sums from the per-use partial buffers. */
export interface ConvGradSpec {
  /** offsets of the weight and bias (or null) in the flat parameter array */
  wOff: number;
  bOff: number | null;
  O: number;
  /** C·KH·KW */
  K: number;
  /** per use: blocks per split of its partial kernel (O·NCG, which depends on a fused pool), for tk_splits */
  useBlocks: number[];
  /** floats per use in the partial buffer: MAX_SPLITS·O·(K+1) */
  stride: number;
}

/**
 * SGD over the flat parameter array, from rules.ts (penalty gradient, sgdStep),
 * plus the penalty loss; the last block adds the step's loss to the epoch sum,
 * advances the batch cursor and step counter.
 */
export function sgdKernel(total: number, convs: ConvGradSpec[]): KernelSrc {
  const h: StepTerms<string> = {
    lr: 'h_lr',
    momentum: 'h_mom',
    weightDecay: 'h_wd',
    l1: 'h_l1',
    l2: 'h_l2',
    nesterov: 'h_nes',
    beta1: 'h_b1',
    beta2: 'h_b2',
    eps: 'h_eps',
  };
  const adam = adamView(h, { mv: 'mv', vv: 'vv', M: 'M[i]', V: 'V[i]' });
  const pg = penaltyGrad(cArith, 'p', h);
  const pl = penaltyLoss(cArith, 'p', h);
  const st = sgdStep(cArith, 'p', 'g', 'm', 'first', h);
  const wpArgs = convs.map((_, j) => `, const float* __restrict__ wp${j}`).join('');
  // uses with the same blocking share one loop over the uses (NetResDeep: 100 uses, one loop)
  const sum = (j: number, c: ConvGradSpec, o: string, k: string) => {
    const runs: { blocks: number; from: number; to: number }[] = [];
    c.useBlocks.forEach((b, u) =>
      runs.length && runs[runs.length - 1].blocks === b ? (runs[runs.length - 1].to = u + 1) : runs.push({ blocks: b, from: u, to: u + 1 }),
    );
    const loops = runs.map(
      (r) => `{
          const int sp = tk_splits(B, ${r.blocks}, sms, nullptr);
          for (int u = ${r.from}; u < ${r.to}; u++)
            for (int s = 0; s < sp; s++) acc += wp${j}[(size_t)u * ${c.stride} + ((size_t)s * ${c.O} + ${o}) * ${c.K + 1} + ${k}];
        }`,
    );
    return `{
        float acc = 0.f;
        ${loops.join('\n        ')}
        graw = acc;
      }`;
  };
  const pick = convs
    .map((c, j) => {
      let t = `if (i >= ${c.wOff} && i < ${c.wOff + c.O * c.K}) {
        const int r = i - ${c.wOff}, o = r / ${c.K}, k = r % ${c.K};
        ${sum(j, c, 'o', 'k')}
      } else `;
      if (c.bOff !== null)
        t += `if (i >= ${c.bOff} && i < ${c.bOff + c.O}) {
        const int o = i - ${c.bOff};
        ${sum(j, c, 'o', String(c.K))}
      } else `;
      return t;
    })
    .join('');
  const code = `// The optimizer step over ${total} parameters: SGD (momentum, Nesterov, weight decay; the first step copies the
// gradient into the momentum buffer) or Adam/AdamW, with l1/l2 penalties, rules from src/train/rules.ts;
// conv gradients are summed here from their per-use, per-split partials (fixed order)
__global__ void __launch_bounds__(${THREADS}) KNAME(float* __restrict__ P, float* __restrict__ G, float* __restrict__ M, float* __restrict__ V, TkScalars* sc, double* __restrict__ part, int B, unsigned* counter, int sms${wpArgs}) {
  constexpr int N = ${total};
  (void)sms;
  const int kind = sc->optimizer;
  // a schedule's value for this step of the call, else the constant (the CPU's train_epoch does the same)
  const float h_lr = sc->lr_steps ? (float)sc->lr_steps[sc->step] : sc->lr;
  const double mom = sc->mom_steps ? sc->mom_steps[sc->step] : kind == TK_OPT_SGD ? (double)sc->momentum : sc->beta1;
  const float h_mom = kind == TK_OPT_SGD ? (float)mom : 0.f, h_wd = sc->weight_decay, h_l1 = sc->l1, h_l2 = sc->l2;
  const float h_nes = sc->nesterov, h_b1 = (float)mom, h_b2 = (float)sc->beta2, h_eps = sc->eps;
  const float first = sc->momentum_started ? 0.f : 1.f;
  // Adam's step scalars for t = adam_steps + 1, in double as PyTorch; one thread computes them
  // (the double pow in every thread spilled registers in the largest kernels)
  struct AdamS { float step_size, bc2_sqrt, omb1, omb2, decay, decoupled; };
  __shared__ AdamS s;
  if (threadIdx.x == 0) {
    const double dlr = (double)h_lr, db1 = mom, db2 = sc->beta2, dwd = (double)h_wd;
    const double t = (double)(sc->adam_steps + 1), b1t = pow(db1, t), b2t = pow(db2, t);
    s.step_size = (float)(${adam.adamStepSize});
    s.bc2_sqrt = (float)(${adam.adamBc2Sqrt});
    s.omb1 = (float)(${adam.adamOmb1});
    s.omb2 = (float)(${adam.adamOmb2});
    s.decay = (float)(${adam.adamDecay});
    s.decoupled = kind == TK_OPT_ADAMW ? 1.f : 0.f;
  }
  __syncthreads();
  (void)h_nes; (void)h_b1; (void)h_b2; (void)h_eps;
  double v[1] = {0.0};
  const int base = blockIdx.x * blockDim.x * ${SGD_ITEMS} + threadIdx.x;
  #pragma unroll
  for (int it = 0; it < ${SGD_ITEMS}; it++) {
    const int i = base + it * blockDim.x;
    if (i < N) {
      float graw;
      ${pick}graw = G[i];
      const float p = P[i];
      const float g = graw + ${pg};
      const float m = M[i];
      v[0] += (double)(${pl});
      G[i] = g;
      if (kind == TK_OPT_SGD) {
        P[i] = ${st.p};
        M[i] = ${st.buf};
      } else {
        const float mv = m, vv = V[i];
        M[i] = ${adam.adamM};
        V[i] = ${adam.adamV};
        P[i] = ${adam.adamParam};
      }
    }
  }
  __shared__ double tot[1];
${blockSumDoubles(1)}
  if (threadIdx.x == 0) part[blockIdx.x] = tot[0];
${LAST_BLOCK}
  if (threadIdx.x == 0) {
    double pen = 0.0;
    for (int j = 0; j < (int)gridDim.x; j++) pen += ((volatile double*)part)[j];
    sc->loss_total = sc->loss_ce + pen;
    sc->loss_sum += sc->loss_total;
    if (kind != TK_OPT_SGD) sc->adam_steps += 1;
    else if (h_mom != 0.f) sc->momentum_started = 1;
    sc->cursor += B;
    sc->step += 1;
  }
}
`;
  return { kind: 'sgd', code };
}

/** Penalty loss alone (no step), for reporting the loss of a forward without training. */
export const PRELUDE = `// ---- shared device helpers
struct TkScalars {
  double loss_sum;       // sum over this call's steps of (cross-entropy + penalties)
  double loss_ce;        // last step's cross-entropy
  double loss_total;     // last step's cross-entropy + penalties
  long long correct;     // training-mode predictions that matched, summed over this call
  int cursor;            // position in the shuffle order of the next batch
  int step;              // steps done in this call
  unsigned seed_base;    // dropout: the seed itself (use_step_seed 0), or tk_step_seed(seed_base, first_step + step)
  int use_step_seed;
  unsigned long long first_step;
  int momentum_started;  // 0 until a step with momentum != 0 (PyTorch's first-step rule)
  long long adam_steps;  // Adam's t: steps taken with the moments in M and V (kept across calls, like momentum_started)
  float lr, momentum, weight_decay, l1, l2;
  float label_smoothing;  // the loss: cross-entropy with this smoothing, or (nll) NLL of log-probabilities
  int nll;
  int optimizer;         // TK_OPT_SGD, TK_OPT_ADAM, TK_OPT_ADAMW
  float nesterov, eps;
  double beta1, beta2;
  const double* lr_steps;   // device: a schedule's lr for each step of this call, or NULL
  const double* mom_steps;  // device: its momentum (SGD) or beta1 (Adam) for each step, or NULL
};
static_assert(sizeof(TkScalars) <= 256, "TkScalars outgrew its 256-byte allocation (src/codegen/cuda/emit.ts)");

${hashC('__host__ __device__ __forceinline__', { mix: 'tk_mix32', bits: 'tk_hash', uniform: 'tk_hash_uniform', step: 'tk_step_seed', below: 'tk_hash_below' })}
__device__ __forceinline__ unsigned tk_dropout_seed(const TkScalars* sc) {
  return sc->use_step_seed ? tk_step_seed(sc->seed_base, sc->first_step + (unsigned long long)sc->step) : sc->seed_base;
}
`;
