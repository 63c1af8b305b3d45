// softmax / log-softmax over the features of [B, n] (dim 1), e.g. a model that
// returns log-probabilities for nn.NLLLoss.
import { showShape } from '../graph/errors.js';
import { numel, type SoftmaxNode } from '../graph/ir.js';
import { Module } from '../graph/module.js';
import { tensorOps, type Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import type { OpDef } from './types.js';

export function softmaxOp(x: Tensor, dim: number, log: boolean): Tensor {
  const t = currentTracer();
  const call = `${log ? 'log_softmax' : 'softmax'}(dim=${dim})`;
  if (x.sampleShape.length !== 1) t.fail(call, `only a [B, n] input is supported, got ${showShape(x.sampleShape)}`, 'flatten first');
  if (dim !== 1 && dim !== -1) t.fail(call, `only dim 1 (the features of [B, n]) is supported, got ${dim}`);
  return t.record({ op: 'softmax', inputs: [x.id], shape: [...x.sampleShape], params: [], attrs: { log } });
}

tensorOps.softmax = softmaxOp;

export class Softmax extends Module {
  constructor(readonly dim = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return softmaxOp(x, this.dim, false);
  }
}

export class LogSoftmax extends Module {
  constructor(readonly dim = 1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return softmaxOp(x, this.dim, true);
  }
}

export const softmaxFn = (x: Tensor, dim = 1): Tensor => softmaxOp(x, dim, false);
export const logSoftmaxFn = (x: Tensor, dim = 1): Tensor => softmaxOp(x, dim, true);

export const softmax: OpDef<SoftmaxNode> = {
  /** y = exp(x − m) / Σ exp(x − m), or log-softmax x − m − log Σ exp(x − m), m = max x; per sample of [B, N] */
  forward(n, c) {
    const N = numel(n.shape);
    const x = c.x[0];
    for (let b = 0; b < c.B; b++) {
      let m = -Infinity;
      for (let i = 0; i < N; i++) m = Math.max(m, x[b * N + i]);
      let s = 0;
      for (let i = 0; i < N; i++) s += Math.exp(x[b * N + i] - m);
      for (let i = 0; i < N; i++) c.out[b * N + i] = n.attrs.log ? x[b * N + i] - m - Math.log(s) : Math.exp(x[b * N + i] - m) / s;
    }
    return {};
  },
  /** softmax: dx += y·(dy − Σ dy·y);  log-softmax: dx += dy − exp(y)·Σ dy */
  backward(n, c) {
    const d = c.dx(0);
    if (!d) return;
    const N = numel(n.shape);
    const y = c.out;
    for (let b = 0; b < c.B; b++) {
      let s = 0;
      for (let i = 0; i < N; i++) s += n.attrs.log ? c.dout[b * N + i] : c.dout[b * N + i] * y[b * N + i];
      for (let i = 0; i < N; i++) {
        const j = b * N + i;
        d[j] += n.attrs.log ? c.dout[j] - Math.exp(y[j]) * s : y[j] * (c.dout[j] - s);
      }
    }
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const N = numel(n.shape);
      const consts: [string, string | number][] = [
        ['N', N],
        ['LOG', String(n.attrs.log)],
      ];
      const label = `${n.attrs.log ? 'log_softmax' : 'softmax'} over [B, ${N}]`;
      c.forward(g, {
        kernel: c.kernel({
          kind: 'softmax_fwd',
          fn: 'tk::softmax_fwd',
          consts,
          params: [
            ['float*', 'out'],
            ['const float*', 'x'],
          ],
          scratch: '0',
          doc: [label],
        }),
        args: [c.val(n.id), c.val(n.inputs[0])],
      });
      const x = n.inputs[0];
      if (!c.needsGrad(x)) return undefined;
      return () => {
        const d = c.contrib(x);
        const kernel = c.kernel({
          kind: 'softmax_bwd',
          fn: 'tk::softmax_bwd',
          consts: [...consts, ['ACCUM', String(d.accum)]],
          params: [
            ['float*', 'dx'],
            ['const float*', 'gy'],
            ['const float*', 'y'],
          ],
          scratch: '0',
          doc: [`backward of ${label}`],
        });
        return [...d.before, c.call(g, { kernel, args: [d.arg, c.gout(g), c.val(n.id)] })];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      const k = c.kernel(K.softmaxFwd(numel(n.shape), n.attrs.log));
      return [c.launch(k, `dim3(tk_cdiv(B, ${K.THREADS}))`, [c.val(n.inputs[0], train), c.val(n.id, train), 'B'])];
    },
    backward(g, c, gout) {
      const n = g.head;
      const x = n.inputs[0];
      if (!c.need(x)) return [];
      const { out, base } = c.contrib(x);
      const k = c.kernel(K.softmaxBwd(numel(n.shape), n.attrs.log));
      return [c.launch(k, `dim3(tk_cdiv(B, ${K.THREADS}))`, [gout, c.val(n.id, true), base ?? 'nullptr', out, 'B'])];
    },
  },
};
