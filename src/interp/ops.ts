// One forward and one backward function per graph op, on float64 arrays in
// NCHW order (llm.c style: plain loops, every tensor's shape in a comment).
//
// Conventions:
// - Forward functions OVERWRITE their outputs.
// - Backward functions ACCUMULATE (+=) into every gradient they write
//   (dinp, dweight, dbias). A value read by several ops (a skip connection)
//   or a parameter used by several nodes (a shared module) therefore sums its
//   gradient over uses with no extra bookkeeping; callers zero the arrays once.
// - A gradient argument may be null when nobody needs it.
// - Shapes are written with B = batch, C = channels, H/W = input height/width,
//   OH/OW = output height/width.

import { hashUniform } from '../util/rng.js';

type F64 = Float64Array;

/** Geometry of a 2-d window op (convolution or pooling). */
export interface Geom2d {
  B: number;
  /** input channels (= output channels for pooling) */
  C: number;
  H: number;
  W: number;
  OH: number;
  OW: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
}

export interface ConvGeom extends Geom2d {
  /** output channels */
  OC: number;
}

/**
 * The output positions [lo, hi) whose input coordinate o·stride − pad + k
 * falls inside [0, inSize): the rest read zero padding.
 */
export function validRange(k: number, stride: number, pad: number, inSize: number, outSize: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - k) / stride));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + pad - k) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

// ---------------------------------------------------------------- conv2d

/**
 * Cross-correlation with zero padding (PyTorch's Conv2d):
 *   out[b, oc, oy, ox] = bias[oc] + Σ_{ic, ky, kx} weight[oc, ic, ky, kx] · inp[b, ic, oy·SH − PH + ky, ox·SW − PW + kx]
 * out [B, OC, OH, OW], inp [B, C, H, W], weight [OC, C, KH, KW], bias [OC] or null.
 */
export function conv2dForward(out: F64, inp: F64, weight: F64, bias: F64 | null, g: ConvGeom): void {
  const { B, C, H, W, OC, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  for (let b = 0; b < B; b++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (b * OC + oc) * OH * OW;
      out.fill(bias ? bias[oc] : 0, o0, o0 + OH * OW);
      for (let ic = 0; ic < C; ic++) {
        for (let ky = 0; ky < KH; ky++) {
          const [oyLo, oyHi] = validRange(ky, SH, PH, H, OH);
          for (let kx = 0; kx < KW; kx++) {
            const [oxLo, oxHi] = validRange(kx, SW, PW, W, OW);
            const w = weight[((oc * C + ic) * KH + ky) * KW + kx];
            for (let oy = oyLo; oy < oyHi; oy++) {
              const iy = oy * SH - PH + ky;
              const iRow = ((b * C + ic) * H + iy) * W - PW + kx; // + ox·SW is the input x
              const oRow = o0 + oy * OW;
              for (let ox = oxLo; ox < oxHi; ox++) out[oRow + ox] += w * inp[iRow + ox * SW];
            }
          }
        }
      }
    }
  }
}

/**
 * dinp [B, C, H, W]     += Σ weight[oc, ic, ky, kx] · dout[b, oc, oy, ox] over the windows reading each input
 * dweight [OC, C, KH, KW] += Σ_{b, oy, ox} dout[b, oc, oy, ox] · inp[b, ic, oy·SH − PH + ky, ox·SW − PW + kx]
 * dbias [OC]            += Σ_{b, oy, ox} dout[b, oc, oy, ox]
 * dout [B, OC, OH, OW], inp [B, C, H, W], weight [OC, C, KH, KW].
 */
export function conv2dBackward(
  dinp: F64 | null,
  dweight: F64 | null,
  dbias: F64 | null,
  dout: F64,
  inp: F64,
  weight: F64,
  g: ConvGeom,
): void {
  const { B, C, H, W, OC, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  for (let b = 0; b < B; b++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (b * OC + oc) * OH * OW;
      if (dbias) {
        let s = 0;
        for (let i = o0; i < o0 + OH * OW; i++) s += dout[i];
        dbias[oc] += s;
      }
      for (let ic = 0; ic < C; ic++) {
        for (let ky = 0; ky < KH; ky++) {
          const [oyLo, oyHi] = validRange(ky, SH, PH, H, OH);
          for (let kx = 0; kx < KW; kx++) {
            const [oxLo, oxHi] = validRange(kx, SW, PW, W, OW);
            const wi = ((oc * C + ic) * KH + ky) * KW + kx;
            const w = weight[wi];
            let dw = 0;
            for (let oy = oyLo; oy < oyHi; oy++) {
              const iy = oy * SH - PH + ky;
              const iRow = ((b * C + ic) * H + iy) * W - PW + kx;
              const oRow = o0 + oy * OW;
              for (let ox = oxLo; ox < oxHi; ox++) {
                const d = dout[oRow + ox];
                dw += d * inp[iRow + ox * SW];
                if (dinp) dinp[iRow + ox * SW] += w * d;
              }
            }
            if (dweight) dweight[wi] += dw;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- linear

/**
 * out[b, o] = bias[o] + Σ_i inp[b, i] · weight[o, i]
 * out [B, OUT], inp [B, IN], weight [OUT, IN], bias [OUT] or null.
 */
export function linearForward(out: F64, inp: F64, weight: F64, bias: F64 | null, B: number, IN: number, OUT: number): void {
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < OUT; o++) {
      let s = bias ? bias[o] : 0;
      const wRow = o * IN;
      const xRow = b * IN;
      for (let i = 0; i < IN; i++) s += inp[xRow + i] * weight[wRow + i];
      out[b * OUT + o] = s;
    }
  }
}

/**
 * dinp [B, IN]       += Σ_o dout[b, o] · weight[o, i]
 * dweight [OUT, IN]  += Σ_b dout[b, o] · inp[b, i]
 * dbias [OUT]        += Σ_b dout[b, o]
 * dout [B, OUT], inp [B, IN], weight [OUT, IN].
 */
export function linearBackward(
  dinp: F64 | null,
  dweight: F64 | null,
  dbias: F64 | null,
  dout: F64,
  inp: F64,
  weight: F64,
  B: number,
  IN: number,
  OUT: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < OUT; o++) {
      const d = dout[b * OUT + o];
      if (dbias) dbias[o] += d;
      const wRow = o * IN;
      const xRow = b * IN;
      for (let i = 0; i < IN; i++) {
        if (dweight) dweight[wRow + i] += d * inp[xRow + i];
        if (dinp) dinp[xRow + i] += d * weight[wRow + i];
      }
    }
  }
}

// ---------------------------------------------------------------- pooling

/**
 * Max over each KH×KW window, floor mode; padding counts as −∞ (never chosen).
 * argmax[i] = flat index into inp of the FIRST maximum in row-major window order
 * (a later equal value does not replace it; a NaN does, as in PyTorch).
 * out [B, C, OH, OW], argmax [B, C, OH, OW] (Int32), inp [B, C, H, W].
 */
export function maxpool2dForward(out: F64, argmax: Int32Array, inp: F64, g: Geom2d): void {
  const { B, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  for (let bc = 0; bc < B * C; bc++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let best = -Infinity;
        let at = -1;
        for (let ky = 0; ky < KH; ky++) {
          const iy = oy * SH - PH + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < KW; kx++) {
            const ix = ox * SW - PW + kx;
            if (ix < 0 || ix >= W) continue;
            const i = (bc * H + iy) * W + ix;
            const v = inp[i];
            if (at < 0 || v > best || Number.isNaN(v)) {
              best = v;
              at = i;
            }
          }
        }
        const o = (bc * OH + oy) * OW + ox;
        out[o] = best;
        argmax[o] = at;
      }
    }
  }
}

/** dinp [B, C, H, W] += dout routed to each window's argmax. dout, argmax [B, C, OH, OW]. */
export function maxpool2dBackward(dinp: F64, dout: F64, argmax: Int32Array): void {
  for (let o = 0; o < dout.length; o++) dinp[argmax[o]] += dout[o];
}

/**
 * Mean over each KH×KW window, floor mode, padding included in the count
 * (count_include_pad=True: the divisor is always KH·KW).
 * out [B, C, OH, OW], inp [B, C, H, W].
 */
export function avgpool2dForward(out: F64, inp: F64, g: Geom2d): void {
  const { B, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  const scale = 1 / (KH * KW);
  for (let bc = 0; bc < B * C; bc++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        let s = 0;
        for (let ky = 0; ky < KH; ky++) {
          const iy = oy * SH - PH + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < KW; kx++) {
            const ix = ox * SW - PW + kx;
            if (ix >= 0 && ix < W) s += inp[(bc * H + iy) * W + ix];
          }
        }
        out[(bc * OH + oy) * OW + ox] = s * scale;
      }
    }
  }
}

/** dinp [B, C, H, W] += dout / (KH·KW) spread over each window's in-range inputs. dout [B, C, OH, OW]. */
export function avgpool2dBackward(dinp: F64, dout: F64, g: Geom2d): void {
  const { B, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  const scale = 1 / (KH * KW);
  for (let bc = 0; bc < B * C; bc++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const d = dout[(bc * OH + oy) * OW + ox] * scale;
        for (let ky = 0; ky < KH; ky++) {
          const iy = oy * SH - PH + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < KW; kx++) {
            const ix = ox * SW - PW + kx;
            if (ix >= 0 && ix < W) dinp[(bc * H + iy) * W + ix] += d;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------- batchnorm2d

/**
 * Per-channel batch statistics over (B, H, W), n = B·HW values each:
 *   mean[c] = Σ x / n,  variance[c] = Σ (x − mean)² / n  (biased).
 * mean [C], variance [C], inp [B, C, HW].
 */
export function batchStats(mean: F64, variance: F64, inp: F64, B: number, C: number, HW: number): void {
  const n = B * HW;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let b = 0; b < B; b++) for (let i = (b * C + c) * HW, e = i + HW; i < e; i++) s += inp[i];
    const m = s / n;
    let v = 0;
    for (let b = 0; b < B; b++)
      for (let i = (b * C + c) * HW, e = i + HW; i < e; i++) {
        const d = inp[i] - m;
        v += d * d;
      }
    mean[c] = m;
    variance[c] = v / n;
  }
}

/**
 * The train-mode side effect on the buffers, from the batch's statistics:
 *   running_mean = (1 − momentum)·running_mean + momentum·mean
 *   running_var  = (1 − momentum)·running_var  + momentum·variance·n/(n − 1)   (unbiased)
 * runningMean, runningVar, mean, variance [C]; n = B·H·W values per channel.
 */
export function batchnormUpdateRunning(runningMean: F64, runningVar: F64, mean: F64, variance: F64, n: number, momentum: number): void {
  const unbias = n / (n - 1); // n > 1: PyTorch refuses to train BatchNorm on one value per channel
  for (let c = 0; c < mean.length; c++) {
    runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
    runningVar[c] = (1 - momentum) * runningVar[c] + momentum * variance[c] * unbias;
  }
}

/**
 * Normalises with the given statistics (batch ones in train mode, running ones in eval):
 *   xhat[b, c, i] = (inp[b, c, i] − mean[c]) · invstd[c],  out = weight[c]·xhat + bias[c]
 * out, xhat, inp [B, C, HW]; mean, invstd (= 1/√(var + eps)), weight, bias [C].
 */
export function batchnorm2dForward(
  out: F64,
  xhat: F64,
  inp: F64,
  mean: F64,
  invstd: F64,
  weight: F64,
  bias: F64,
  B: number,
  C: number,
  HW: number,
): void {
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = (b * C + c) * HW, e = i + HW; i < e; i++) {
        const xh = (inp[i] - mean[c]) * invstd[c];
        xhat[i] = xh;
        out[i] = weight[c] * xh + bias[c];
      }
    }
  }
}

/**
 * dweight [C] += Σ dout·xhat,  dbias [C] += Σ dout  (sums over B and HW)
 * dinp [B, C, HW]:
 *   train (batch statistics depend on the input; n = B·HW):
 *     dinp += weight·invstd/n · (n·dout − Σ dout − xhat·Σ dout·xhat)
 *   eval (running statistics are constants):
 *     dinp += weight·invstd·dout
 * dout, xhat [B, C, HW]; invstd, weight [C].
 */
export function batchnorm2dBackward(
  dinp: F64 | null,
  dweight: F64 | null,
  dbias: F64 | null,
  dout: F64,
  xhat: F64,
  invstd: F64,
  weight: F64,
  B: number,
  C: number,
  HW: number,
  train: boolean,
): void {
  const n = B * HW;
  for (let c = 0; c < C; c++) {
    let sumDy = 0;
    let sumDyXhat = 0;
    for (let b = 0; b < B; b++)
      for (let i = (b * C + c) * HW, e = i + HW; i < e; i++) {
        sumDy += dout[i];
        sumDyXhat += dout[i] * xhat[i];
      }
    if (dweight) dweight[c] += sumDyXhat;
    if (dbias) dbias[c] += sumDy;
    if (!dinp) continue;
    const k = weight[c] * invstd[c];
    for (let b = 0; b < B; b++)
      for (let i = (b * C + c) * HW, e = i + HW; i < e; i++) {
        dinp[i] += train ? (k / n) * (n * dout[i] - sumDy - xhat[i] * sumDyXhat) : k * dout[i];
      }
  }
}

// ---------------------------------------------------------------- dropout

/**
 * The train-mode dropout multiplier per element: 1/(1 − p) where kept, 0 where dropped.
 * Kept iff hashUniform(seed, stream, index) >= p, with index = b·C + c when
 * channelwise (Dropout2d: one draw per channel, CHW = C·HW), else b·CHW + i.
 * mask [B, CHW].
 */
export function dropoutMask(
  mask: F64,
  B: number,
  CHW: number,
  C: number,
  p: number,
  channelwise: boolean,
  seed: number,
  stream: number,
): void {
  const keep = 1 / (1 - p);
  const HW = CHW / C;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < CHW; i++) {
      const index = channelwise ? b * C + Math.floor(i / HW) : b * CHW + i;
      mask[b * CHW + i] = hashUniform(seed, stream, index) >= p ? keep : 0;
    }
  }
}

/** out = inp · mask, elementwise; all [B, CHW]. */
export function dropoutForward(out: F64, inp: F64, mask: F64): void {
  for (let i = 0; i < out.length; i++) out[i] = inp[i] * mask[i];
}

/** dinp += dout · mask, elementwise; all [B, CHW]. */
export function dropoutBackward(dinp: F64, dout: F64, mask: F64): void {
  for (let i = 0; i < dout.length; i++) dinp[i] += dout[i] * mask[i];
}

// ---------------------------------------------------------------- elementwise

/** out = max(x, 0); same shapes. */
export function reluForward(out: F64, inp: F64): void {
  for (let i = 0; i < out.length; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
}

/** dinp += dout where the output is positive (the gradient at exactly 0 is 0). */
export function reluBackward(dinp: F64, dout: F64, out: F64): void {
  for (let i = 0; i < dout.length; i++) if (out[i] > 0) dinp[i] += dout[i];
}

/** out = tanh(x); same shapes. */
export function tanhForward(out: F64, inp: F64): void {
  for (let i = 0; i < out.length; i++) out[i] = Math.tanh(inp[i]);
}

/** dinp += dout · (1 − y²), y the forward output. */
export function tanhBackward(dinp: F64, dout: F64, out: F64): void {
  for (let i = 0; i < dout.length; i++) dinp[i] += dout[i] * (1 - out[i] * out[i]);
}

/** out = a + b; same shapes. */
export function addForward(out: F64, a: F64, b: F64): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}

/** da += dout, db += dout (the same array twice when both summands are one value). */
export function addBackward(da: F64, db: F64, dout: F64): void {
  for (let i = 0; i < dout.length; i++) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

/** A reshape keeps the values in order: out = inp, dinp += dout. */
export function reshapeForward(out: F64, inp: F64): void {
  out.set(inp);
}

export function reshapeBackward(dinp: F64, dout: F64): void {
  for (let i = 0; i < dout.length; i++) dinp[i] += dout[i];
}

// ---------------------------------------------------------------- loss

/**
 * Mean cross-entropy over the batch (PyTorch's CrossEntropyLoss()):
 *   loss = mean_b( logsumexp(z[b]) − z[b, label[b]] ),  dlogits = (softmax(z) − onehot(label)) / B
 * logits, dlogits [B, K]; labels [B] in 0..K−1.
 */
export function crossEntropy(logits: ArrayLike<number>, labels: ArrayLike<number>, B: number, K: number): { loss: number; dlogits: F64 } {
  const dlogits = new Float64Array(B * K);
  let total = 0;
  for (let b = 0; b < B; b++) {
    const y = labels[b];
    if (!Number.isInteger(y) || y < 0 || y >= K) throw new Error(`label ${b} is ${y}; expected a class index in 0..${K - 1}`);
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, logits[b * K + k]);
    let sum = 0;
    for (let k = 0; k < K; k++) sum += Math.exp(logits[b * K + k] - m);
    total += m + Math.log(sum) - logits[b * K + y];
    for (let k = 0; k < K; k++) dlogits[b * K + k] = (Math.exp(logits[b * K + k] - m) / sum - (k === y ? 1 : 0)) / B;
  }
  return { loss: total / B, dlogits };
}
