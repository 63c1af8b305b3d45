// maxpool2d / avgpool2d: window pooling, floor mode. Adaptive pools (exact
// divisors of the input) and x.mean([2, 3]) trace to them.
import { showShape } from '../graph/errors.js';
import { numel, type PoolNode } from '../graph/ir.js';
import { Module } from '../graph/module.js';
import { tensorOps, type Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import { NULL_ARG, type CpuCtx } from '../codegen/cpu/ctx.js';
import type { Group } from '../codegen/middle.js';
import { reshapeTo } from './reshape.js';
import { anyValue, checkOptions, pairOf, windowOut, type Pair } from './util.js';
import type { InterpBackward, InterpForward, OpDef } from './types.js';

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  /** average pooling only: whether padding counts in the divisor (default true, as PyTorch) */
  countIncludePad?: boolean;
}

type Kind = PoolNode['op'];

const title = (kind: Kind) => (kind === 'maxpool2d' ? 'MaxPool2d' : 'AvgPool2d');

export function pool(kind: Kind, x: Tensor, kernel: Pair, o: PoolOptions = {}): Tensor {
  const t = currentTracer();
  const known: Record<string, (v: unknown) => boolean> = { stride: anyValue, padding: anyValue };
  if (kind === 'avgpool2d') known.countIncludePad = (v) => typeof v === 'boolean';
  checkOptions(title(kind), o, known);
  const sizes = [pairOf(kernel, 'kernel size', 1), pairOf(o.stride ?? kernel, 'stride', 1), pairOf(o.padding ?? 0, 'padding', 0)];
  const [[kh, kw], [sh, sw], [ph, pw]] = sizes.map((p) => p.value);
  const op = `${kind === 'maxpool2d' ? 'max_pool2d' : 'avg_pool2d'}(${kh === kw ? kh : `[${kh}, ${kw}]`})`;
  const bad = sizes.map((p) => p.problem).filter(Boolean);
  if (bad.length) t.fail(op, bad.join('; '));
  const s = x.sampleShape;
  if (s.length !== 3) t.fail(op, `expects an input [B, C, H, W], got ${showShape(s)}`);
  if (2 * ph > kh || 2 * pw > kw) t.fail(op, `padding must be at most half the kernel size`);
  const oh = windowOut(s[1], kh, sh, ph);
  const ow = windowOut(s[2], kw, sw, pw);
  if (oh < 1 || ow < 1) t.fail(op, `window ${kh}x${kw} does not fit input ${showShape(s)}`, 'too many pooling layers for this input size?');
  const attrs = { kh, kw, sh, sw, ph, pw, countIncludePad: o.countIncludePad ?? true };
  return t.record({ op: kind, inputs: [x.id], shape: [s[0], oh, ow], params: [], attrs });
}

/** AdaptiveAvg/MaxPool2d to `out` [h, w]: a plain pool when each output size divides the input's. */
export function adaptivePool(kind: Kind, x: Tensor, out: Pair): Tensor {
  const t = currentTracer();
  const name = kind === 'maxpool2d' ? 'AdaptiveMaxPool2d' : 'AdaptiveAvgPool2d';
  const o = pairOf(out, 'output size', 1);
  if (o.problem) t.fail(name, o.problem);
  const s = x.sampleShape;
  if (s.length !== 3) t.fail(name, `expects an input [B, C, H, W], got ${showShape(s)}`);
  const [oh, ow] = o.value;
  if (s[1] % oh !== 0 || s[2] % ow !== 0)
    t.fail(
      name,
      `output ${oh}x${ow} does not divide the input ${s[1]}x${s[2]}: only exact divisors are supported (uneven windows are not)`,
    );
  const [kh, kw] = [s[1] / oh, s[2] / ow];
  return pool(kind, x, [kh, kw], { stride: [kh, kw] });
}

/** x.mean([2, 3]) of [B, C, H, W]: global average pooling, to [B, C] (or [B, C, 1, 1] with keepdim). */
export function mean(x: Tensor, dims: number[], keepdim = false): Tensor {
  const t = currentTracer();
  const call = `mean([${dims}])`;
  const s = x.sampleShape;
  const norm = [...dims].map((d) => (d < 0 ? d + s.length + 1 : d)).sort();
  if (s.length !== 3 || norm.join() !== '2,3')
    t.fail(
      call,
      `only the mean over the spatial dims of [B, C, H, W] is supported (x.mean([2, 3])), got dims [${dims}] of ${showShape(s)}`,
    );
  const y = pool('avgpool2d', x, [s[1], s[2]]);
  return keepdim ? y : reshapeTo(y, [s[0]]);
}

tensorOps.mean = mean;

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return pool('maxpool2d', x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return pool('avgpool2d', x, this.kernelSize, this.options);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return adaptivePool('avgpool2d', x, this.outputSize);
  }
}

export class AdaptiveMaxPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return adaptivePool('maxpool2d', x, this.outputSize);
  }
}

export const maxPool2dFn = (x: Tensor, kernelSize: Pair, stride?: Pair, padding: Pair = 0): Tensor =>
  pool('maxpool2d', x, kernelSize, { stride: stride ?? kernelSize, padding });
export const avgPool2dFn = (x: Tensor, kernelSize: Pair, stride?: Pair, padding: Pair = 0, countIncludePad = true): Tensor =>
  pool('avgpool2d', x, kernelSize, { stride: stride ?? kernelSize, padding, countIncludePad });
export const adaptiveAvgPool2dFn = (x: Tensor, outputSize: Pair): Tensor => adaptivePool('avgpool2d', x, outputSize);
export const adaptiveMaxPool2dFn = (x: Tensor, outputSize: Pair): Tensor => adaptivePool('maxpool2d', x, outputSize);

/** Geometry of a 2-d window op. */
export interface Geom2d {
  B: number;
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

export function poolGeom(n: PoolNode, inShape: number[], B: number): Geom2d {
  const a = n.attrs;
  const [C, H, W] = inShape;
  return { B, C, H, W, OH: n.shape[1], OW: n.shape[2], KH: a.kh, KW: a.kw, SH: a.sh, SW: a.sw, PH: a.ph, PW: a.pw };
}

/**
 * Max over each KH×KW window, floor mode; padding counts as −∞ (never chosen).
 * argmax[i] = flat index into inp of the FIRST maximum in row-major window order
 * (a later equal value does not replace it; a NaN does, as in PyTorch).
 * out [B, C, OH, OW], argmax [B, C, OH, OW] (Int32), inp [B, C, H, W].
 */
export function maxpool2dForward(out: Float64Array, argmax: Int32Array, inp: Float64Array, g: Geom2d): void {
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

/**
 * Mean over each KH×KW window, floor mode. The divisor is KH·KW when padding
 * counts (count_include_pad=True, PyTorch's default), else the in-range count.
 * out [B, C, OH, OW], inp [B, C, H, W]. `visit` gets (input index, weight) per window element.
 */
function avgWindows(g: Geom2d, includePad: boolean, visit: (o: number, i: number, w: number) => void): void {
  const { B, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW } = g;
  for (let bc = 0; bc < B * C; bc++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++) {
        const y0 = oy * SH - PH;
        const x0 = ox * SW - PW;
        const count = includePad ? KH * KW : (Math.min(y0 + KH, H) - Math.max(y0, 0)) * (Math.min(x0 + KW, W) - Math.max(x0, 0));
        const o = (bc * OH + oy) * OW + ox;
        for (let iy = Math.max(y0, 0); iy < Math.min(y0 + KH, H); iy++)
          for (let ix = Math.max(x0, 0); ix < Math.min(x0 + KW, W); ix++) visit(o, (bc * H + iy) * W + ix, 1 / count);
      }
}

function forward(n: PoolNode, c: InterpForward) {
  const g = poolGeom(n, c.xShape[0], c.B);
  const x = c.x[0];
  if (n.op === 'maxpool2d') {
    const argmax = new Int32Array(c.out.length);
    maxpool2dForward(c.out, argmax, x, g);
    return { argmax };
  }
  c.out.fill(0);
  avgWindows(g, n.attrs.countIncludePad, (o, i, w) => (c.out[o] += x[i] * w));
  return {};
}

/** dinp += dout routed to each window's argmax (max), or spread over the window (average). */
function backward(n: PoolNode, c: InterpBackward) {
  const d = c.dx(0);
  if (!d) return;
  if (n.op === 'maxpool2d') {
    const am = c.saved.argmax!;
    for (let o = 0; o < c.dout.length; o++) d[am[o]] += c.dout[o];
    return;
  }
  avgWindows(poolGeom(n, c.xShape[0], c.B), n.attrs.countIncludePad, (o, i, w) => (d[i] += c.dout[o] * w));
}

function cpuPlan(g: Group<PoolNode>, c: CpuCtx) {
  const n = g.head;
  const a = n.attrs;
  const [C, H, W] = c.shape(n.inputs[0]);
  const max = n.op === 'maxpool2d';
  if (max && a.kh * a.kw > 256)
    throw new Error(
      `the CPU backend's max pool keeps window indices in a byte: a ${a.kh}x${a.kw} window is too large (${n.module || 'model'} at ${n.source})`,
    );
  const consts: [string, string | number][] = [
    ['C', C],
    ['H', H],
    ['W', W],
    ['KH', a.kh],
    ['KW', a.kw],
    ['SH', a.sh],
    ['SW', a.sw],
    ['PH', a.ph],
    ['PW', a.pw],
    ['MAX', String(max)],
    ['CIP', String(a.countIncludePad)],
  ];
  const doc = [
    `${max ? 'max' : 'avg'} pool ${a.kh}x${a.kw} stride ${a.sh},${a.sw} pad ${a.ph},${a.pw}${max || a.countIncludePad ? '' : ' (padding not counted)'}`,
    `x [B, ${C}, ${H}, ${W}] -> out [B, ${n.shape.join(', ')}]`,
  ];
  const am = max ? c.argmax(n.id) : NULL_ARG;
  c.forward(g, {
    kernel: c.kernel({
      kind: 'pool_fwd',
      fn: 'tk::pool_fwd',
      consts,
      params: [
        ['float*', 'out'],
        ['uint8_t*', 'am'],
        ['const float*', 'x'],
      ],
      scratch: '0',
      doc,
    }),
    args: [c.val(n.id), am, c.val(n.inputs[0])],
  });
  const x = n.inputs[0];
  if (!c.needsGrad(x)) return undefined;
  return () => {
    const d = c.contrib(x);
    const kernel = c.kernel({
      kind: 'pool_bwd',
      fn: 'tk::pool_bwd',
      consts: [...consts, ['ACCUM', String(d.accum)]],
      params: [
        ['float*', 'dx'],
        ['const float*', 'gy'],
        ['const uint8_t*', 'am'],
      ],
      scratch: '0',
      doc: [`backward of: ${doc[0]}`, doc[1]],
    });
    return [...d.before, c.call(g, { kernel, args: [d.arg, c.gout(g), am] })];
  };
}

function shapeOf(n: PoolNode, inShape: number[]): K.PoolShape {
  const [C, H, W] = inShape;
  const a = n.attrs;
  return {
    C,
    H,
    W,
    OH: n.shape[1],
    OW: n.shape[2],
    kh: a.kh,
    kw: a.kw,
    sh: a.sh,
    sw: a.sw,
    ph: a.ph,
    pw: a.pw,
    countIncludePad: a.countIncludePad,
  };
}

function def(kind: Kind): OpDef<PoolNode> {
  const op = kind === 'maxpool2d' ? 'max' : 'avg';
  return {
    forward,
    backward,
    cpu: { plan: cpuPlan },
    cuda: {
      forward(g, c, train) {
        const n = g.head;
        const N = numel(n.shape);
        const k = c.kernel(K.poolFwd(op, shapeOf(n, c.graph.nodes[n.inputs[0]].shape)));
        const idx = (train || c.evalBackward) && op === 'max' ? c.alloc(`j${n.id}`, c.maxB * N * 4, 'int') : 'nullptr';
        return [c.launch(k, `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [c.val(n.inputs[0], train), c.val(n.id, train), idx, 'B'])];
      },
      backward(g, c, gout) {
        const n = g.head;
        const x = n.inputs[0];
        if (!c.need(x)) return [];
        const { out, base } = c.contrib(x);
        const idx = op === 'max' ? `m->j${n.id}` : 'nullptr';
        const inShape = c.graph.nodes[x].shape;
        const k = c.kernel(K.poolBwd(op, shapeOf(n, inShape)));
        return [c.launch(k, `dim3(tk_cdiv(B * ${numel(inShape)}, ${K.THREADS}))`, [gout, idx, base ?? 'nullptr', out, 'B'])];
      },
    },
  };
}

export const maxpool2d = def('maxpool2d');
export const avgpool2d = def('avgpool2d');
