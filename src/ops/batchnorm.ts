// batchnorm: BatchNorm1d / BatchNorm2d over a per-sample [C], [C, L] or [C, H, W]
// input; statistics over the batch and the trailing dims.
import { showShape } from '../graph/errors.js';
import { numel, type BatchNormNode } from '../graph/ir.js';
import { Buffer, Module, Parameter } from '../graph/module.js';
import type { Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import { epilogueOf } from '../codegen/cuda/epilogue.js';
import type { CudaCtx } from '../codegen/cuda/ctx.js';
import type { Group } from '../codegen/middle.js';
import { NULL_ARG, fmtShape, type Arg } from '../codegen/cpu/ctx.js';
import { describeAct } from './activations.js';
import { cDoubleArith, cfloat, numberArith, type Arith } from './expr.js';
import { anyValue, checkOptions } from './util.js';
import type { F64, OpDef } from './types.js';

abstract class BatchNorm extends Module {
  declare weight: Parameter;
  declare bias: Parameter;
  readonly eps: number;
  readonly momentum: number;

  constructor(
    readonly numFeatures: number,
    options: { eps?: number; momentum?: number },
    private readonly kind: 'BatchNorm1d' | 'BatchNorm2d',
  ) {
    super();
    checkOptions(`${kind}(${numFeatures})`, options, { eps: anyValue, momentum: anyValue });
    if (!Number.isInteger(numFeatures) || numFeatures < 1)
      throw new Error(`${kind}: numFeatures must be a positive integer, got ${numFeatures}`);
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    const n = numFeatures;
    // Registered by name so the state_dict keys are PyTorch's snake_case ones.
    const weight = new Parameter(new Float32Array(n).fill(1), [n]);
    const bias = new Parameter(new Float32Array(n), [n]);
    this.register('weight', weight);
    this.register('bias', bias);
    this.register('running_mean', new Buffer(new Float32Array(n), [n], 'F32'));
    this.register('running_var', new Buffer(new Float32Array(n).fill(1), [n], 'F32'));
    this.register('num_batches_tracked', new Buffer(new BigInt64Array(1), [], 'I64'));
    Object.defineProperty(this, 'weight', { value: weight, enumerable: false });
    Object.defineProperty(this, 'bias', { value: bias, enumerable: false });
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    const op = `${this.kind}(${this.numFeatures})`;
    const s = x.sampleShape;
    const want = this.kind === 'BatchNorm2d' ? '[B, C, H, W]' : '[B, C] or [B, C, L]';
    if (this.kind === 'BatchNorm2d' ? s.length !== 3 : s.length !== 1 && s.length !== 2)
      t.fail(op, `expects an input ${want}, got ${showShape(s)}`);
    if (s[0] !== this.numFeatures) t.fail(op, `expects ${this.numFeatures} channels, got ${showShape(s)}`, `use ${this.kind}(${s[0]})`);
    const name = t.nameOf(this);
    return t.record({
      op: 'batchnorm',
      inputs: [x.id],
      shape: [...s],
      params: ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `${name}.${k}`),
      attrs: { C: this.numFeatures, eps: this.eps, momentum: this.momentum },
    });
  }
}

export class BatchNorm2d extends BatchNorm {
  constructor(numFeatures: number, options: { eps?: number; momentum?: number } = {}) {
    super(numFeatures, options, 'BatchNorm2d');
  }
}

export class BatchNorm1d extends BatchNorm {
  constructor(numFeatures: number, options: { eps?: number; momentum?: number } = {}) {
    super(numFeatures, options, 'BatchNorm1d');
  }
}

/**
 * The statistics formulas, written once over Arith: the interpreter evaluates
 * them, the CPU runtime and the CUDA kernels get them printed (bnStatsC).
 *   invstd = 1/√(var + eps);  unbiased = var·n/(n − 1) (n > 1);  running ← (1 − m)·running + m·stat
 */
export const bnMath = {
  invstd: <T>(o: Arith<T>, variance: T, eps: T): T => o.div(o.lit(1), o.sqrt(o.add(variance, eps))),
  unbiased: <T>(o: Arith<T>, variance: T, n: T): T => o.select(o.gt(n, o.lit(1)), o.div(o.mul(variance, n), o.sub(n, o.lit(1))), variance),
  running: <T>(o: Arith<T>, running: T, stat: T, momentum: T): T => o.add(o.mul(o.sub(o.lit(1), momentum), running), o.mul(momentum, stat)),
};

/** The formulas as C (double) in the given variable names: invstd, and the new running mean and variance. */
export function bnStatsC(v: { mean: string; variance: string; n: string; eps: string; momentum: string; rmean: string; rvar: string }): {
  invstd: string;
  rmean: string;
  rvar: string;
} {
  const o = cDoubleArith;
  return {
    invstd: bnMath.invstd(o, v.variance, v.eps),
    rmean: bnMath.running(o, v.rmean, v.mean, v.momentum),
    rvar: bnMath.running(o, v.rvar, bnMath.unbiased(o, v.variance, v.n), v.momentum),
  };
}

/**
 * Per-channel batch statistics over (B, HW), n = B·HW values each:
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
 */
export function batchnormUpdateRunning(runningMean: F64, runningVar: F64, mean: F64, variance: F64, n: number, momentum: number): void {
  const o = numberArith;
  for (let c = 0; c < mean.length; c++) {
    runningMean[c] = bnMath.running(o, runningMean[c], mean[c], momentum);
    runningVar[c] = bnMath.running(o, runningVar[c], bnMath.unbiased(o, variance[c], n), momentum);
  }
}

export const batchnorm: OpDef<BatchNormNode> = {
  /**
   * xhat = (x − mean)·invstd, out = weight·xhat + bias, with batch statistics
   * (train; running statistics updated) or running ones (eval).
   * out, xhat, x [B, C, HW]; invstd = 1/√(var + eps) [C].
   */
  forward(n, c) {
    const { C, eps, momentum } = n.attrs;
    const inShape = c.xShape[0];
    const HW = numel(inShape) / C;
    const B = c.B;
    const [weight, bias, runningMean, runningVar] = [0, 1, 2, 3].map((i) => c.param(i));
    const x = c.x[0];
    let mean: F64;
    let variance: F64;
    if (c.train) {
      if (B * HW < 2)
        throw new Error(
          `${n.module || 'batchnorm'}: expected more than 1 value per channel when training, got input [${[B, ...inShape].join(', ')}] (as PyTorch)`,
        );
      mean = new Float64Array(C);
      variance = new Float64Array(C);
      batchStats(mean, variance, x, B, C, HW);
      batchnormUpdateRunning(runningMean, runningVar, mean, variance, B * HW, momentum);
      c.bump(4);
    } else {
      mean = runningMean.slice();
      variance = runningVar;
    }
    const invstd = variance.map((v) => bnMath.invstd(numberArith, v, eps));
    const xhat = new Float64Array(c.out.length);
    for (let b = 0; b < B; b++)
      for (let ch = 0; ch < C; ch++)
        for (let i = (b * C + ch) * HW, e = i + HW; i < e; i++) {
          xhat[i] = (x[i] - mean[ch]) * invstd[ch];
          c.out[i] = weight[ch] * xhat[i] + bias[ch];
        }
    return { xhat, invstd };
  },
  /**
   * dweight += Σ dout·xhat, dbias += Σ dout (over B and HW);
   * dx += weight·invstd/n · (n·dout − Σ dout − xhat·Σ dout·xhat) in train mode (n = B·HW),
   * dx += weight·invstd·dout in eval (running statistics are constants).
   */
  backward(n, c) {
    const C = n.attrs.C;
    const HW = numel(c.xShape[0]) / C;
    const B = c.B;
    const N = B * HW;
    const xhat = c.saved.xhat!;
    const invstd = c.saved.invstd!;
    const weight = c.param(0);
    const [dw, db, dx] = [c.grad(0), c.grad(1), c.dx(0)];
    for (let ch = 0; ch < C; ch++) {
      let sumDy = 0;
      let sumDyXhat = 0;
      for (let b = 0; b < B; b++)
        for (let i = (b * C + ch) * HW, e = i + HW; i < e; i++) {
          sumDy += c.dout[i];
          sumDyXhat += c.dout[i] * xhat[i];
        }
      if (dw) dw[ch] += sumDyXhat;
      if (db) db[ch] += sumDy;
      if (!dx) continue;
      const k = weight[ch] * invstd[ch];
      for (let b = 0; b < B; b++)
        for (let i = (b * C + ch) * HW, e = i + HW; i < e; i++)
          dx[i] += c.train ? (k / N) * (N * c.dout[i] - sumDy - xhat[i] * sumDyXhat) : k * c.dout[i];
    }
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const inShape = c.shape(n.inputs[0]);
      const C = n.attrs.C;
      const HW = numel(inShape) / C;
      const [wN, bN, rm, rv, nbt] = n.params;
      const red = { fwd: c.reduce(2 * C), bwd: c.reduce(2 * C) };
      const actLabel = g.act ? ` + ${describeAct(g.act.attrs.fn, g.act.attrs.p)}` : '';
      const doc = [
        `BatchNorm(${C})${actLabel}${g.add ? ' + residual add' : ''}${g.pool ? ' + maxpool 2x2' : ''}`,
        `z ${fmtShape(inShape)} -> out ${fmtShape(c.shape(g.out))}`,
      ];
      const sc = `tk::BnScratch<${C}>::scratch_floats`;
      const eps = { expr: cfloat(n.attrs.eps) };
      const mom = { expr: cfloat(n.attrs.momentum) };
      const out = c.val(g.out);
      const z = c.val(n.inputs[0]);
      const w = c.param(wN);
      const bias = c.param(bN);
      const running = [c.fbuf(rm), c.fbuf(rv)];
      const act = c.act(g.act);
      // bn_* (+act, + residual add) and bn_pool_* (+act, + 2x2 max pool) take the same
      // arguments but one: the skip input / its gradient, or the pool's argmax
      const pooled = g.pool !== undefined;
      const fam = pooled ? 'bn_pool' : 'bn';
      const consts: [string, string | number][] = pooled
        ? [
            ['C', C],
            ['H', inShape[1]],
            ['W', inShape[2]],
            ['ACT', act],
          ]
        : [
            ['C', C],
            ['HW', HW],
            ['ACT', act],
            ['ADD', String(!!g.add)],
          ];
      const fwdParams: [string, string][] = [
        ['float*', 'out'],
        ['const float*', 'z'],
        pooled ? ['uint8_t*', 'am'] : ['const float*', 'skip'],
        ['const float*', 'gamma'],
        ['const float*', 'beta'],
      ];
      const kt = c.kernel({
        kind: `${fam}_fwd_train`,
        fn: `tk::${fam}_fwd_train`,
        consts,
        params: [
          ...fwdParams,
          ['float*', 'rmean'],
          ['float*', 'rvar'],
          ['int64_t*', 'nbt'],
          ['double*', 'part'],
          ['float', 'momentum'],
          ['float', 'eps'],
        ],
        scratch: sc,
        doc: [`train mode: ${doc[0]}`, ...doc.slice(1)],
      });
      const ke = c.kernel({
        kind: `${fam}_fwd_eval`,
        fn: `tk::${fam}_fwd_eval`,
        consts,
        params: [...fwdParams, ['const float*', 'rmean'], ['const float*', 'rvar'], ['float', 'eps']],
        scratch: sc,
        doc: [`eval mode: ${doc[0]}`, ...doc.slice(1)],
      });
      const am = pooled ? c.argmax(g.out) : undefined;
      const skip: Arg = g.add ? c.val(g.add.other) : NULL_ARG;
      c.forward(g, {
        kernel: kt,
        args: [out, z, am ?? skip, w, bias, ...running, c.ibuf(nbt), { red: red.fwd }, mom, eps],
        when: 'c.train',
      });
      // an eval forward records the pool's argmax only for an eval-mode backward
      const evalAm = am && !c.evalBackward ? NULL_ARG : (am ?? skip);
      c.forward(g, { kernel: ke, args: [out, z, evalAm, w, bias, ...running, eps], when: '!c.train' });
      // false when nothing before the BatchNorm has parameters: only gamma and beta get gradients
      const needDz = c.needsGrad(n.inputs[0]);
      const needSkip = g.add !== undefined && c.needsGrad(g.add.other);
      return () => {
        // the skip's gradient is written before z's (both inputs of the group)
        const ds = needSkip ? c.contrib(g.add!.other) : null;
        const dz = needDz ? c.contrib(n.inputs[0]) : null;
        const flags: [string, string][] = [
          ['NEED_DZ', String(needDz)],
          ['ACCUM_DZ', String(!!dz?.accum)],
        ];
        const bconsts: [string, string | number][] = pooled
          ? [...consts, ...flags]
          : [...consts, ['NEED_SKIP', String(needSkip)], ...flags, ['ACCUM_SKIP', String(!!ds?.accum)]];
        // both modes' backward kernels start with these parameters
        const bparams: [string, string][] = [
          ['float*', 'dz'],
          pooled ? ['const uint8_t*', 'am'] : ['float*', 'dskip'],
          ['const float*', 'gy'],
          ['const float*', 'y'],
          ['const float*', 'z'],
          ['const float*', 'gamma'],
          ['const float*', 'beta'],
        ];
        const kb = c.kernel({
          kind: `${fam}_bwd`,
          fn: `tk::${fam}_bwd`,
          consts: bconsts,
          params: [
            ...bparams,
            ['const double*', 'part'],
            ['double*', 'bpart'],
            ['float*', 'ggamma'],
            ['float*', 'gbeta'],
            ['float', 'eps'],
          ],
          scratch: sc,
          doc: [`backward of train mode: ${doc[0]}`, ...doc.slice(1)],
        });
        // the act derivative from the output; with a residual add the output holds the sum, so it is recomputed from z
        const y = g.act && !g.add ? out : NULL_ARG;
        const args: Arg[] = [dz?.arg ?? NULL_ARG, am ?? ds?.arg ?? NULL_ARG, c.gout(g), y, z, w, bias];
        const train = c.call(g, {
          kernel: kb,
          args: [...args, { red: red.fwd }, { red: red.bwd }, c.pgrad(wN), c.pgrad(bN), eps],
          ...(c.evalBackward && { when: 'c.train' as const }),
        });
        const before = [...(ds?.before ?? []), ...(dz?.before ?? [])];
        if (!c.evalBackward || (!dz && !ds)) return [...before, train];
        // eval mode: the running statistics are constants; only input gradients (no eval step updates gamma, beta)
        const ko = c.kernel({
          kind: `${fam}_bwd_eval`,
          fn: `tk::${fam}_bwd_eval`,
          consts: bconsts,
          params: [...bparams, ['const float*', 'rmean'], ['const float*', 'rvar'], ['float', 'eps']],
          scratch: sc,
          doc: [`backward of eval mode (input gradients only): ${doc[0]}`, ...doc.slice(1)],
        });
        const evalCall = c.call(g, {
          kernel: ko,
          args: [...args, ...running, eps],
          when: '!c.train',
        });
        return [...before, train, evalCall];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const node = g.head;
      const ep = epilogueOf(g);
      const { C, eps, momentum } = node.attrs;
      const HW = ep.H * ep.W;
      c.noteChannels(C);
      const [w, b, rm, rv, nbt] = node.params;
      const outN = numel(c.graph.nodes[g.out].shape);
      const grid = `dim3(tk_cdiv(B * ${outN}, ${K.THREADS}))`;
      const other = g.add ? c.val(g.add.other, train) : 'nullptr';
      if (!train) {
        const apply = c.kernel(K.bnApply(ep, eps, false));
        // the pool's argmax, for an eval-mode backward
        const evalIdx = g.pool && c.evalBackward ? c.alloc(`i${g.out}`, c.maxB * outN, 'unsigned char') : 'nullptr';
        return [
          c.launch(apply, grid, [c.val(node.inputs[0], false), c.S(rm), c.S(rv), c.P(w), c.P(b), other, c.val(g.out, false), evalIdx, 'B']),
        ];
      }
      const L: string[] = [];
      const mean = c.alloc(`bm${node.id}`, C * 4);
      const inv = c.alloc(`bi${node.id}`, C * 4);
      if (c.hasFusedStats(node)) {
        L.push('  // batch statistics: computed by the conv above');
      } else {
        const stats = c.kernel(K.bnStats(C, HW, eps, momentum));
        L.push(`  { const int S = tk_bn_splits(m, B * ${HW}, ${C});`);
        L.push(
          c.launch(stats, `dim3(${C}, S)`, [
            c.val(node.inputs[0], true),
            'm->bnpart',
            'B',
            'S',
            mean,
            inv,
            c.S(rm),
            c.S(rv),
            c.counter(nbt),
            'm->counter',
          ]) + ' }',
        );
      }
      const idx = g.pool ? c.alloc(`i${g.out}`, c.maxB * outN, 'unsigned char') : 'nullptr';
      const apply = c.kernel(K.bnApply(ep, eps, true));
      L.push(c.launch(apply, grid, [c.val(node.inputs[0], true), mean, inv, c.P(w), c.P(b), other, c.val(g.out, true), idx, 'B']));
      return L;
    },
    backward(g, c, gout) {
      const L: string[] = [];
      const node = g.head;
      const ep = epilogueOf(g);
      const { C } = node.attrs;
      const HW = ep.H * ep.W;
      const [w, b] = node.params;
      const idx = g.pool ? `m->i${g.out}` : 'nullptr';
      if (c.evalPass) return cudaEvalBackward(g, c, gout, idx);
      const accW = c.acc(w);
      if (c.acc(b) !== accW) throw new Error(`internal: ${b} and ${w} are shared differently`);
      if (g.add && c.need(g.add.other)) c.identity(g.add.other, gout, L);
      const common = [gout, c.val(g.out, true), idx, c.val(node.inputs[0], true), `m->bm${node.id}`, `m->bi${node.id}`, c.P(w), c.P(b)];
      L.push(`  { const int S = tk_bn_splits(m, B * ${HW}, ${C});`);
      L.push(
        c.launch(c.kernel(K.bnBwdStats(ep)), `dim3(${C}, S)`, [
          ...common,
          'm->bnpart',
          'B',
          'S',
          'm->bnsums',
          c.G(w),
          c.G(b),
          accW,
          'm->counter',
        ]) + ' }',
      );
      if (c.need(node.inputs[0])) {
        const { out: o, base } = c.contrib(node.inputs[0]);
        L.push(
          c.launch(c.kernel(K.bnBwdApply(ep)), `dim3(tk_cdiv(B * ${C * HW}, ${K.THREADS}))`, [
            ...common,
            'm->bnsums',
            base ?? 'nullptr',
            o,
            'B',
          ]),
        );
      }
      return L;
    },
  },
};

/** Eval-mode backward on CUDA, input gradients only: the skip gets dY, z gets gamma·invstd·dY (running statistics). */
function cudaEvalBackward(g: Group<BatchNormNode>, c: CudaCtx, gout: string, idx: string): string[] {
  const L: string[] = [];
  const node = g.head;
  const ep = epilogueOf(g);
  const [w, b, rm, rv] = node.params;
  if (g.add && c.need(g.add.other)) c.identity(g.add.other, gout, L);
  if (!c.need(node.inputs[0])) return L;
  const { out, base } = c.contrib(node.inputs[0]);
  const args = [
    gout,
    c.val(g.out, false),
    idx,
    c.val(node.inputs[0], false),
    c.S(rm),
    c.S(rv),
    c.P(w),
    c.P(b),
    base ?? 'nullptr',
    out,
    'B',
  ];
  L.push(c.launch(c.kernel(K.bnBwdEval(ep, node.attrs.eps)), `dim3(tk_cdiv(B * ${node.attrs.C * ep.H * ep.W}, ${K.THREADS}))`, args));
  return L;
}
