// linear: y = x·Wᵀ + b on a flat [inF] input (nn.Linear, nn.LazyLinear).
import { showShape } from '../graph/errors.js';
import { numel, type LinearNode } from '../graph/ir.js';
import { defaultInit } from '../graph/init.js';
import { Module, Parameter } from '../graph/module.js';
import type { Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import { NULL_ARG } from '../codegen/cpu/ctx.js';
import { describeAct } from './activations.js';
import { anyValue, checkOptions } from './util.js';
import type { F64, OpDef } from './types.js';

const zeros = (shape: number[]) => new Parameter(new Float32Array(numel(shape)), shape);

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(
    public inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    checkOptions(`Linear(${inFeatures}, ${outFeatures})`, options, { bias: anyValue });
    const bad = [inFeatures, outFeatures].filter((f, i) => !Number.isInteger(f) || f < (i === 0 ? 0 : 1));
    if (bad.length)
      throw new Error(`Linear(${inFeatures}, ${outFeatures}): feature counts must be positive integers, got ${bad.join(', ')}`);
    this.weight = zeros([outFeatures, inFeatures]);
    this.bias = options.bias === false ? null : zeros([outFeatures]);
    if (inFeatures > 0) defaultInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    if (this.inFeatures === 0) this.materialize(x.numel());
    const op = `Linear(${this.inFeatures}, ${this.outFeatures})`;
    const s = x.sampleShape;
    const n = x.numel();
    if (s.length !== 1 && n === this.inFeatures)
      t.fail(
        op,
        `expects a flat input [B, ${this.inFeatures}], got ${showShape(s)}`,
        `forgot the view? add \`out = out.view(-1, ${n})\` before this layer`,
      );
    if (s.length !== 1 || n !== this.inFeatures)
      t.fail(
        op,
        `expects ${this.inFeatures} input features, got ${showShape(s)} (${n} values per sample)`,
        s.length === 1
          ? `the layer before gives ${n} features: use Linear(${n}, ${this.outFeatures}), or nn.LazyLinear(${this.outFeatures}) to infer it`
          : `flatten with \`out.view(-1, ${n})\` and use Linear(${n}, ${this.outFeatures}), or nn.LazyLinear(${this.outFeatures})`,
      );
    const name = t.nameOf(this);
    return t.record({
      op: 'linear',
      inputs: [x.id],
      shape: [this.outFeatures],
      params: this.bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`],
      attrs: { inF: this.inFeatures, outF: this.outFeatures, bias: this.bias !== null },
    });
  }

  private materialize(inFeatures: number): void {
    this.inFeatures = inFeatures;
    this.weight = zeros([this.outFeatures, inFeatures]);
    if (this.bias) this.bias = zeros([this.outFeatures]);
    defaultInit(this.weight, this.bias);
  }
}

/** Linear whose input features are found at the first trace (PyTorch's nn.LazyLinear). */
export class LazyLinear extends Linear {
  constructor(outFeatures: number, options: { bias?: boolean } = {}) {
    super(0, outFeatures, options);
  }
}

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
 * dinp [B, IN] += Σ_o dout[b, o] · weight[o, i];  dweight [OUT, IN] += Σ_b dout[b, o] · inp[b, i];  dbias [OUT] += Σ_b dout[b, o]
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

export const linear: OpDef<LinearNode> = {
  forward(n, c) {
    const a = n.attrs;
    linearForward(c.out, c.x[0], c.param(0), a.bias ? c.param(1) : null, c.B, a.inF, a.outF);
    return {};
  },
  backward(n, c) {
    const a = n.attrs;
    linearBackward(c.dx(0), c.grad(0), a.bias ? c.grad(1) : null, c.dout, c.x[0], c.param(0), c.B, a.inF, a.outF);
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const a = n.attrs;
      const act = c.act(g.act);
      const consts: [string, string | number][] = [
        ['I', a.inF],
        ['O', a.outF],
        ['ACT', act],
      ];
      const actLabel = g.act ? ` + ${describeAct(g.act.attrs.fn, g.act.attrs.p)}` : '';
      const doc = [
        `Linear ${a.inF}->${a.outF}${a.bias ? ' + bias' : ''}${actLabel}`,
        `x [B, ${a.inF}] -> out [B, ${a.outF}]; weight [${a.outF}, ${a.inF}]`,
      ];
      const x = n.inputs[0];
      const w = c.param(n.params[0]);
      c.forward(g, {
        kernel: c.kernel({
          kind: 'linear_fwd',
          fn: 'tk::linear_fwd',
          consts,
          params: [
            ['float*', 'out'],
            ['const float*', 'x'],
            ['const float*', 'w'],
            ['const float*', 'b'],
          ],
          scratch: '0',
          doc,
        }),
        args: [c.val(g.out), c.val(x), w, a.bias ? c.param(n.params[1]) : NULL_ARG],
      });
      const needDx = c.needsGrad(x);
      return () => {
        const d = needDx ? c.contrib(x) : null;
        const kernel = c.kernel({
          kind: 'linear_bwd',
          fn: 'tk::linear_bwd',
          consts: [...consts, ['NEED_DX', String(needDx)], ['ACCUM_DX', String(!!d?.accum)]],
          params: [
            ['float*', 'dx'],
            ['float*', 'gw'],
            ['float*', 'gb'],
            ['const float*', 'gy'],
            ['const float*', 'y'],
            ['const float*', 'x'],
            ['const float*', 'w'],
          ],
          scratch: `(size_t)mb * ${a.outF}`,
          doc: [`backward of: ${doc[0]}`, ...doc.slice(1)],
        });
        const args = [
          d?.arg ?? NULL_ARG,
          c.pgrad(n.params[0]),
          a.bias ? c.pgrad(n.params[1]) : NULL_ARG,
          c.gout(g),
          g.act ? c.val(g.out) : NULL_ARG,
          c.val(x),
          w,
        ];
        return [...(d?.before ?? []), c.call(g, { kernel, args })];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      const a = n.attrs;
      const name = c.kernel(K.linearFwd(a.inF, a.outF, a.bias, K.actOf(g.act)));
      return [
        c.launch(name, `dim3(tk_cdiv(B * ${a.outF * 32}, ${K.THREADS}))`, [
          c.val(n.inputs[0], train),
          c.P(n.params[0]),
          a.bias ? c.P(n.params[1]) : 'nullptr',
          c.val(g.out, train),
          'B',
        ]),
      ];
    },
    backward(g, c, gout) {
      const n = g.head;
      const a = n.attrs;
      const x = n.inputs[0];
      const accW = c.acc(n.params[0]);
      if (a.bias && c.acc(n.params[1]) !== accW) throw new Error(`internal: ${n.params[1]} and ${n.params[0]} are shared differently`);
      let dx = 'nullptr';
      let base = 'nullptr';
      if (c.need(x)) {
        const r = c.contrib(x);
        dx = r.out;
        base = r.base ?? 'nullptr';
      }
      if (c.isHead(g)) {
        // the head kernel (after the forward) does this linear's backward
        c.setHeadBackward({ dx, base, acc: accW });
        return ['  // (done by the head kernel)'];
      }
      const k = c.kernel(K.linearBwd(a.inF, a.outF, a.bias, K.actOf(g.act)));
      const extra = c.need(x) ? `B * ${a.inF}` : '0';
      return [
        c.launch(k, `dim3(tk_cdiv(${a.outF * a.inF + a.outF} + ${extra}, ${K.THREADS}))`, [
          gout,
          c.val(g.out, true),
          c.val(x, true),
          c.P(n.params[0]),
          c.G(n.params[0]),
          a.bias ? c.G(n.params[1]) : 'nullptr',
          accW,
          base,
          dx,
          'B',
        ]),
      ];
    },
  },
};
