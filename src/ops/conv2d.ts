// conv2d: PyTorch's Conv2d (cross-correlation, zero padding), with stride,
// dilation and groups (depthwise when groups = channels).
import { showShape } from '../graph/errors.js';
import { numel, type Conv2dNode } from '../graph/ir.js';
import { defaultInit } from '../graph/init.js';
import { Module, Parameter } from '../graph/module.js';
import type { Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import { epilogueOf } from '../codegen/cuda/epilogue.js';
import { NULL_ARG, fmtShape, type CpuCtx } from '../codegen/cpu/ctx.js';
import type { CudaCtx } from '../codegen/cuda/ctx.js';
import type { Group } from '../codegen/middle.js';
import { describeAct } from './activations.js';
import { anyValue, checkOptions, isPositiveInt, pairOf, validRange, type Pair } from './util.js';
import type { F64, OpDef } from './types.js';

export interface Conv2dOptions {
  kernelSize: Pair;
  stride?: Pair;
  /** zero padding per side, or 'same' (stride 1; an even effective kernel pads one more after, as PyTorch) / 'valid' (none) */
  padding?: Pair | 'same' | 'valid';
  dilation?: Pair;
  /** inChannels and outChannels must divide by it; groups = inChannels is a depthwise conv */
  groups?: number;
  bias?: boolean;
  /** only 'zeros' (PyTorch's default): the others are refused, never ignored */
  paddingMode?: 'zeros';
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernel: [number, number];
  readonly stride: [number, number];
  /** before (top, left); after (bottom, right) differs only for 'same' with an even effective kernel */
  readonly padding: [number, number];
  readonly paddingAfter: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions | number,
  ) {
    super();
    const o = typeof options === 'number' ? { kernelSize: options } : options;
    const name = `Conv2d(${inChannels}, ${outChannels})`;
    checkOptions(name, o, {
      kernelSize: anyValue,
      stride: anyValue,
      padding: anyValue,
      dilation: anyValue,
      groups: anyValue,
      bias: anyValue,
      paddingMode: (v) => v === 'zeros',
    });
    const groups = o.groups ?? 1;
    const bad: string[] = [];
    for (const c of [inChannels, outChannels]) if (!isPositiveInt(c)) bad.push(`channels must be positive integers, got ${c}`);
    if (!isPositiveInt(groups)) bad.push(`groups must be a positive integer, got ${JSON.stringify(groups)}`);
    else if (inChannels % groups !== 0 || outChannels % groups !== 0)
      bad.push(`inChannels and outChannels must be divisible by groups (${groups})`);
    const kernel = pairOf(o.kernelSize, 'kernelSize', 1);
    const stride = pairOf(o.stride ?? 1, 'stride', 1);
    const dilation = pairOf(o.dilation ?? 1, 'dilation', 1);
    bad.push(...[kernel, stride, dilation].map((p) => p.problem).filter(Boolean));
    let padding: [number, number] = [0, 0];
    let after: [number, number] = [0, 0];
    if (o.padding === 'same') {
      if (stride.value.some((s) => s !== 1)) bad.push(`padding 'same' needs stride 1 (as PyTorch)`);
      // PyTorch: total d·(k − 1), half before, the rest after
      const total = [0, 1].map((i) => dilation.value[i] * (kernel.value[i] - 1));
      padding = [Math.floor(total[0] / 2), Math.floor(total[1] / 2)];
      after = [total[0] - padding[0], total[1] - padding[1]];
    } else if (o.padding !== 'valid') {
      const p = pairOf(o.padding ?? 0, 'padding', 0);
      if (p.problem) bad.push(p.problem);
      padding = p.value;
      after = p.value;
    }
    if (bad.length) throw new Error(`${name}: ${bad.join('; ')}`);
    this.kernel = kernel.value;
    this.stride = stride.value;
    this.dilation = dilation.value;
    this.padding = padding;
    this.paddingAfter = after;
    this.groups = groups;
    this.weight = new Parameter(new Float32Array(outChannels * (inChannels / groups) * this.kernel[0] * this.kernel[1]), [
      outChannels,
      inChannels / groups,
      ...this.kernel,
    ]);
    this.bias = o.bias === false ? null : new Parameter(new Float32Array(outChannels), [outChannels]);
    defaultInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    const op = `Conv2d(${this.inChannels}, ${this.outChannels})`;
    const s = x.sampleShape;
    if (s.length !== 3)
      t.fail(op, `expects an input [B, C, H, W], got ${showShape(s)}`, s.length === 1 ? 'a conv cannot follow a flatten/view' : undefined);
    if (s[0] !== this.inChannels)
      t.fail(
        op,
        `expects ${this.inChannels} input channels, got ${showShape(s)} with ${s[0]}`,
        `use Conv2d(${s[0]}, ${this.outChannels}, ...) or fix the layer before`,
      );
    const [kh, kw] = this.kernel;
    const [sh, sw] = this.stride;
    const [ph, pw] = this.padding;
    const [ph2, pw2] = this.paddingAfter;
    const [dh, dw] = this.dilation;
    const oh = Math.floor((s[1] + ph + ph2 - dh * (kh - 1) - 1) / sh) + 1;
    const ow = Math.floor((s[2] + pw + pw2 - dw * (kw - 1) - 1) / sw) + 1;
    if (oh < 1 || ow < 1)
      t.fail(op, `kernel ${kh}x${kw} (dilation ${dh},${dw}) does not fit input ${showShape(s)} with padding ${ph},${pw}`);
    const name = t.nameOf(this);
    return t.record({
      op: 'conv2d',
      inputs: [x.id],
      shape: [this.outChannels, oh, ow],
      params: this.bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`],
      attrs: {
        inC: this.inChannels,
        outC: this.outChannels,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        ph2,
        pw2,
        dh,
        dw,
        groups: this.groups,
        bias: this.bias !== null,
      },
    });
  }
}

/** Geometry of a convolution. */
export interface ConvGeom {
  B: number;
  /** input channels, output channels, groups */
  C: number;
  OC: number;
  G: number;
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
  DH: number;
  DW: number;
}

export function convGeom(n: Conv2dNode, inShape: number[], B: number): ConvGeom {
  const a = n.attrs;
  const [C, H, W] = inShape;
  return {
    B,
    C,
    OC: a.outC,
    G: a.groups,
    H,
    W,
    OH: n.shape[1],
    OW: n.shape[2],
    KH: a.kh,
    KW: a.kw,
    SH: a.sh,
    SW: a.sw,
    PH: a.ph,
    PW: a.pw,
    DH: a.dh,
    DW: a.dw,
  };
}

/**
 * out[b, oc, oy, ox] = bias[oc] + Σ_{ic, ky, kx} weight[oc, ic, ky, kx] · inp[b, g·C/G + ic, oy·SH − PH + ky·DH, ox·SW − PW + kx·DW]
 * with g = oc / (OC/G) the output channel's group.
 * out [B, OC, OH, OW], inp [B, C, H, W], weight [OC, C/G, KH, KW], bias [OC] or null.
 */
export function conv2dForward(out: F64, inp: F64, weight: F64, bias: F64 | null, g: ConvGeom): void {
  const { B, C, OC, G, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW } = g;
  const CG = C / G;
  const OCG = OC / G;
  for (let b = 0; b < B; b++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (b * OC + oc) * OH * OW;
      out.fill(bias ? bias[oc] : 0, o0, o0 + OH * OW);
      const c0 = Math.floor(oc / OCG) * CG;
      for (let ic = 0; ic < CG; ic++) {
        for (let ky = 0; ky < KH; ky++) {
          const [oyLo, oyHi] = validRange(ky * DH, SH, PH, H, OH);
          for (let kx = 0; kx < KW; kx++) {
            const [oxLo, oxHi] = validRange(kx * DW, SW, PW, W, OW);
            const w = weight[((oc * CG + ic) * KH + ky) * KW + kx];
            for (let oy = oyLo; oy < oyHi; oy++) {
              const iRow = ((b * C + c0 + ic) * H + oy * SH - PH + ky * DH) * W - PW + kx * DW; // + ox·SW is the input x
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
 * dinp += Σ weight · dout over the taps reading each input; dweight += Σ_{b, oy, ox} dout · inp; dbias += Σ dout.
 * dout [B, OC, OH, OW], inp [B, C, H, W], weight [OC, C/G, KH, KW].
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
  const { B, C, OC, G, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW } = g;
  const CG = C / G;
  const OCG = OC / G;
  for (let b = 0; b < B; b++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (b * OC + oc) * OH * OW;
      if (dbias) {
        let s = 0;
        for (let i = o0; i < o0 + OH * OW; i++) s += dout[i];
        dbias[oc] += s;
      }
      const c0 = Math.floor(oc / OCG) * CG;
      for (let ic = 0; ic < CG; ic++) {
        for (let ky = 0; ky < KH; ky++) {
          const [oyLo, oyHi] = validRange(ky * DH, SH, PH, H, OH);
          for (let kx = 0; kx < KW; kx++) {
            const [oxLo, oxHi] = validRange(kx * DW, SW, PW, W, OW);
            const wi = ((oc * CG + ic) * KH + ky) * KW + kx;
            const w = weight[wi];
            let dw = 0;
            for (let oy = oyLo; oy < oyHi; oy++) {
              const iRow = ((b * C + c0 + ic) * H + oy * SH - PH + ky * DH) * W - PW + kx * DW;
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

/** The book's convs: no groups, no dilation, the same padding on both sides. The tuned kernel families of both backends take only these. */
export function isPlainConv(n: Conv2dNode): boolean {
  const a = n.attrs;
  return a.groups === 1 && a.dh === 1 && a.dw === 1 && a.ph2 === a.ph && a.pw2 === a.pw;
}

/**
 * The CPU's register-tiled path (tk_runtime's conv_fast): no dilation, the same padding on both sides and inside the
 * kernel, stride 1 or 2, any groups (depthwise included). Else a plain conv takes the general path, others convg.
 */
export function cpuFastConv(n: Conv2dNode): boolean {
  const a = n.attrs;
  const strideOk = (s: number) => s === 1 || s === 2;
  return (
    a.dh === 1 && a.dw === 1 && a.ph2 === a.ph && a.pw2 === a.pw && strideOk(a.sh) && strideOk(a.sw) && a.ph <= a.kh - 1 && a.pw <= a.kw - 1
  );
}

/** Whether the CPU fuses a following 2x2 max pool into the conv: the stride-1 dense convs of the tuned path. */
export function cpuConvPools(n: Conv2dNode): boolean {
  const a = n.attrs;
  return cpuFastConv(n) && a.groups === 1 && a.sh === 1 && a.sw === 1;
}

function describe(n: Conv2dNode, g: Group): string {
  const a = n.attrs;
  const extra = [a.groups > 1 ? `groups ${a.groups}` : '', a.dh > 1 || a.dw > 1 ? `dilation ${a.dh},${a.dw}` : '']
    .filter(Boolean)
    .join(' ');
  const act = g.act ? ` + ${describeAct(g.act.attrs.fn, g.act.attrs.p)}` : '';
  return `Conv2d ${a.inC}->${a.outC} ${a.kh}x${a.kw} stride ${a.sh},${a.sw} pad ${a.ph},${a.pw}${extra ? ` ${extra}` : ''}${a.bias ? ' + bias' : ''}${act}${g.pool ? ' + maxpool 2x2' : ''}`;
}

function cpuPlan(g: Group<Conv2dNode>, c: CpuCtx) {
  const n = g.head;
  const a = n.attrs;
  const inShape = c.shape(n.inputs[0]);
  const [, H, W] = inShape;
  const fast = cpuFastConv(n);
  // the conv family: the tuned path and the general one for plain convs; convg the rest
  const plain = fast || isPlainConv(n);
  const G = a.groups;
  const geo = `${a.inC / G}, ${a.outC / G}, ${G}, ${H}, ${W}, ${a.kh}, ${a.kw}, ${a.sh}, ${a.sw}, ${a.ph}, ${a.pw}`;
  const scratch = fast ? `tk::ConvGeo<${geo}>::scratch_floats` : '0';
  const act = c.act(g.act);
  const consts: [string, string | number][] = [
    ['CI', a.inC],
    ['CO', a.outC],
    ['H', H],
    ['W', W],
    ['KH', a.kh],
    ['KW', a.kw],
    ['SH', a.sh],
    ['SW', a.sw],
    ['PH', a.ph],
    ['PW', a.pw],
    ...(plain
      ? ([['G', G]] as [string, number][])
      : ([
          ['OH', n.shape[1]],
          ['OW', n.shape[2]],
          ['DH', a.dh],
          ['DW', a.dw],
          ['G', G],
        ] as [string, number][])),
    ['ACT', act],
    ['POOL', String(!!g.pool)],
  ];
  const fam = plain ? 'conv' : 'convg';
  const doc = [
    describe(n, g),
    `x ${fmtShape(inShape)} -> out ${fmtShape(c.shape(g.out))}; weight [${a.outC}, ${a.inC / a.groups}, ${a.kh}, ${a.kw}]`,
  ];
  const kf = c.kernel({
    kind: `${fam}_fwd`,
    fn: `tk::${fam}_fwd`,
    consts,
    params: [
      ['float*', 'out'],
      ['uint8_t*', 'am'],
      ['const float*', 'x'],
      ['const float*', 'w'],
      ['const float*', 'b'],
    ],
    scratch,
    doc,
  });
  const am = g.pool ? c.argmax(g.out) : NULL_ARG;
  const x = n.inputs[0];
  const w = c.param(n.params[0]);
  c.forward(g, { kernel: kf, args: [c.val(g.out), am, c.val(x), w, a.bias ? c.param(n.params[1]) : NULL_ARG] });
  const needDx = c.needsGrad(x);
  return () => {
    const d = needDx ? c.contrib(x) : null;
    const kb = c.kernel({
      kind: `${fam}_bwd`,
      fn: `tk::${fam}_bwd`,
      consts: [...consts, ['NEED_DX', String(needDx)], ['ACCUM_DX', String(!!d?.accum)]],
      params: [
        ['float*', 'dx'],
        ['float*', 'gw'],
        ['float*', 'gb'],
        ['const float*', 'gy'],
        ['const float*', 'y'],
        ['const uint8_t*', 'am'],
        ['const float*', 'x'],
        ['const float*', 'w'],
      ],
      scratch,
      doc: [`backward of: ${doc[0]}`, ...doc.slice(1)],
    });
    const args = [
      d?.arg ?? NULL_ARG,
      c.pgrad(n.params[0], plain),
      a.bias ? c.pgrad(n.params[1], plain) : NULL_ARG,
      c.gout(g),
      g.act ? c.val(g.out) : NULL_ARG,
      am,
      c.val(x),
      w,
    ];
    return [...(d?.before ?? []), c.call(g, { kernel: kb, args })];
  };
}

function convShape(n: Conv2dNode, c: CudaCtx): K.ConvShape {
  const [C, H, W] = c.graph.nodes[n.inputs[0]].shape;
  const a = n.attrs;
  return { C, H, W, O: a.outC, OH: n.shape[1], OW: n.shape[2], KH: a.kh, KW: a.kw, SH: a.sh, SW: a.sw, PH: a.ph, PW: a.pw, bias: a.bias };
}

function cudaForward(g: Group<Conv2dNode>, c: CudaCtx, train: boolean): string[] {
  const n = g.head;
  const x = n.inputs[0];
  const s = convShape(n, c);
  const ep = epilogueOf(g);
  const outN = numel(c.graph.nodes[g.out].shape);
  // the argmax of a fused pool: for the backward, and in eval mode only when an eval-mode backward follows
  const idx = (train || c.evalBackward) && g.pool ? c.alloc(`i${g.out}`, c.maxB * outN, 'unsigned char') : 'nullptr';
  const bias = s.bias ? c.P(n.params[1]) : 'nullptr';
  if (!isPlainConv(n)) {
    const k = c.kernel(K.convgFwd(s, n.attrs, ep));
    return [
      c.launch(k, `dim3(tk_cdiv(B * ${outN}, ${K.THREADS}))`, [c.val(x, train), c.P(n.params[0]), bias, c.val(g.out, train), idx, 'B']),
    ];
  }
  // a train-mode BatchNorm that is this conv's only consumer gets its statistics from the conv's epilogue
  const bn = train ? c.statsConsumer(g) : null;
  const k = K.convFwd(s, ep, c.refB, bn ? { eps: bn.attrs.eps, momentum: bn.attrs.momentum } : null);
  const name = c.kernel(k);
  const args = [c.val(x, train), c.rows(x), 'm->sc', c.P(n.params[0]), bias, c.val(g.out, train), idx, 'B'];
  const gridX = `tk_cdiv(B * ${k.TY * k.TX}, ${K.THREADS})`;
  if (bn) {
    const [, , rm, rv, nbt] = bn.params;
    c.fuseStats(bn, 2 * s.O * Math.ceil((c.maxB * k.TY * k.TX) / K.THREADS));
    args.push(
      'm->bnpart',
      c.alloc(`bm${bn.id}`, bn.attrs.C * 4),
      c.alloc(`bi${bn.id}`, bn.attrs.C * 4),
      c.S(rm),
      c.S(rv),
      c.counter(nbt),
      'm->counter',
    );
  }
  return [c.launch(name, `dim3(${gridX}, ${s.O / k.OCT})`, args)];
}

function cudaBackward(g: Group<Conv2dNode>, c: CudaCtx, gout: string): string[] {
  const n = g.head;
  const x = n.inputs[0];
  const s = convShape(n, c);
  const ep = epilogueOf(g);
  const idx = g.pool ? `m->i${g.out}` : 'nullptr';
  const yout = c.val(g.out, true);
  const L: string[] = [];
  if (!isPlainConv(n)) {
    const accW = c.acc(n.params[0]);
    if (s.bias && c.acc(n.params[1]) !== accW) throw new Error(`internal: ${n.params[1]} and ${n.params[0]} are shared differently`);
    const wn = numel(c.graph.state.find((t) => t.name === n.params[0])!.shape);
    const kw = c.kernel(K.convgWgrad(s, n.attrs, ep));
    L.push(
      c.launch(kw, `dim3(tk_cdiv(${wn + (s.bias ? s.O : 0)}, ${K.THREADS}))`, [
        gout,
        yout,
        idx,
        c.val(x, true),
        c.G(n.params[0]),
        s.bias ? c.G(n.params[1]) : 'nullptr',
        accW,
        'B',
      ]),
    );
    if (c.need(x)) {
      const { out, base } = c.contrib(x);
      const kd = c.kernel(K.convgDgrad(s, n.attrs, ep));
      L.push(
        c.launch(kd, `dim3(tk_cdiv(B * ${s.C * s.H * s.W}, ${K.THREADS}))`, [
          gout,
          yout,
          idx,
          c.P(n.params[0]),
          base ?? 'nullptr',
          out,
          'B',
        ]),
      );
    }
    return L;
  }
  const { NCG, NOG } = K.wgradGroup(s, !!g.pool);
  const { buf, use, stride } = c.wgradUse(n, NOG * NCG);
  const part = `(${buf} + ${use * stride})`;
  L.push(`  { int SB; const int splits = tk_splits(B, ${NOG * NCG}, m->sms, &SB);`);
  if (c.need(x)) {
    // weight and input gradients in one launch; after a max-pool tiling the output, dZ is scattered once first
    const scatter = !!ep.pool && ep.H === ep.pool.oh * ep.pool.kh && ep.W === ep.pool.ow * ep.pool.kw;
    let dz = 'nullptr';
    if (scatter) {
      dz = c.alloc(`dz${n.id}`, c.maxB * numel(n.shape) * 4);
      L.push(
        c.launch(c.kernel(K.poolScatter(ep)), `dim3(tk_cdiv(B * ${numel(c.graph.nodes[g.out].shape)}, ${K.THREADS}))`, [
          gout,
          yout,
          idx,
          dz,
          'B',
        ]),
      );
    }
    const k = K.convBwd(s, ep, c.refB, scatter);
    const { out: o, base } = c.contrib(x);
    L.push(`    const int nw = ${NOG * NCG} * splits, dgx = (int)tk_cdiv(B * ${s.H * k.TX}, ${K.THREADS});`);
    L.push(
      c.launch(c.kernel(k), `dim3(nw + dgx * ${s.C / k.ICT})`, [
        gout,
        yout,
        idx,
        c.val(x, true),
        c.rows(x),
        'm->sc',
        part,
        'SB',
        'nw',
        c.P(n.params[0]),
        base ?? 'nullptr',
        o,
        'dgx',
        dz,
        'B',
      ]) + ' }',
    );
  } else {
    const kp = c.kernel(K.convWgradPartial(s, ep));
    L.push(c.launch(kp, `dim3(${NOG}, ${NCG}, splits)`, [gout, yout, idx, c.val(x, true), c.rows(x), 'm->sc', part, 'B', 'SB']) + ' }');
  }
  return L;
}

export const conv2d: OpDef<Conv2dNode> = {
  forward(n, c) {
    conv2dForward(c.out, c.x[0], c.param(0), n.attrs.bias ? c.param(1) : null, convGeom(n, c.xShape[0], c.B));
    return {};
  },
  backward(n, c) {
    conv2dBackward(c.dx(0), c.grad(0), n.attrs.bias ? c.grad(1) : null, c.dout, c.x[0], c.param(0), convGeom(n, c.xShape[0], c.B));
  },
  cpu: { plan: cpuPlan },
  cuda: { forward: cudaForward, backward: cudaBackward },
};
