// dropout: Dropout (elementwise) and Dropout2d (whole channels); identity in eval.
// Every backend draws the same masks from one counter-based hash (src/util/rng.ts).
import { showShape } from '../graph/errors.js';
import { numel, type DropoutNode } from '../graph/ir.js';
import { Module } from '../graph/module.js';
import type { Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import { hashUniform } from '../util/rng.js';
import * as K from '../codegen/cuda/kernels.js';
import { cfloat } from './expr.js';
import type { F64, OpDef } from './types.js';

export function dropout(x: Tensor, p: number, channelwise: boolean): Tensor {
  const t = currentTracer();
  const op = channelwise ? `Dropout2d(p=${p})` : `Dropout(p=${p})`;
  if (!(typeof p === 'number' && p >= 0 && p < 1)) t.fail(op, `p must be in [0, 1), got ${p}`);
  if (channelwise && x.sampleShape.length !== 3) t.fail(op, `expects an input [B, C, H, W], got ${showShape(x.sampleShape)}`);
  return t.record({
    op: 'dropout',
    inputs: [x.id],
    shape: [...x.sampleShape],
    params: [],
    attrs: { p, channelwise, stream: t.nextStream() },
  });
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, false);
  }
}

export class Dropout2d extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, true);
  }
}

/** F.dropout: with training=false the op is left out of the graph, as PyTorch makes it the identity. */
export function dropoutFn(x: Tensor, p = 0.5, training = true): Tensor {
  return training ? dropout(x, p, false) : x;
}

export function dropout2dFn(x: Tensor, p = 0.5, training = true): Tensor {
  return training ? dropout(x, p, true) : x;
}

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

/** [C, HW] of the mask's units: channels of a Dropout2d, single elements otherwise. */
function units(n: DropoutNode): { C: number; HW: number } {
  const C = n.attrs.channelwise ? n.shape[0] : 1;
  return { C, HW: numel(n.shape) / C };
}

export const dropoutDef: OpDef<DropoutNode> = {
  forward(n, c) {
    const x = c.x[0];
    if (!c.train) {
      c.out.set(x);
      return {};
    }
    let mask = c.mask(n);
    if (!mask) {
      mask = new Float64Array(c.out.length);
      const N = numel(n.shape);
      dropoutMask(mask, c.B, N, n.attrs.channelwise ? n.shape[0] : 1, n.attrs.p, n.attrs.channelwise, c.seed, n.attrs.stream);
    }
    for (let i = 0; i < x.length; i++) c.out[i] = x[i] * mask[i];
    return { mask };
  },
  backward(_n, c) {
    const d = c.dx(0);
    if (!d) return;
    const m = c.saved.mask;
    for (let i = 0; i < c.dout.length; i++) d[i] += m ? c.dout[i] * m[i] : c.dout[i];
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const { C, HW } = units(n);
      const consts: [string, string | number][] = [
        ['C', C],
        ['HW', HW],
        ['CH', String(n.attrs.channelwise)],
      ];
      const label = `${n.attrs.channelwise ? 'Dropout2d' : 'Dropout'}(p=${n.attrs.p}) on [B, ${n.shape.join(', ')}]`;
      const p = { expr: cfloat(n.attrs.p) };
      const stream = { expr: `${n.attrs.stream}u` };
      // a mask given from outside (PyTorch's, replayed by gen check), else NULL: the hash
      const mask = { expr: `m->dmask[${n.attrs.stream}]` };
      c.forward(g, {
        kernel: c.kernel({
          kind: 'dropout_fwd',
          fn: 'tk::dropout_fwd',
          consts,
          params: [
            ['float*', 'out'],
            ['const float*', 'x'],
            ['float', 'p'],
            ['uint32_t', 'stream'],
            ['const float*', 'mask'],
          ],
          scratch: '0',
          doc: [label],
        }),
        args: [c.val(n.id), c.val(n.inputs[0]), p, stream, mask],
      });
      const x = n.inputs[0];
      if (!c.needsGrad(x)) return undefined;
      return () => {
        const d = c.contrib(x);
        const kernel = c.kernel({
          kind: 'dropout_bwd',
          fn: 'tk::dropout_bwd',
          consts: [...consts, ['ACCUM', String(d.accum)]],
          params: [
            ['float*', 'dx'],
            ['const float*', 'gy'],
            ['float', 'p'],
            ['uint32_t', 'stream'],
            ['const float*', 'mask'],
          ],
          scratch: '0',
          doc: [`backward of ${label}`],
        });
        const train = c.call(g, { kernel, args: [d.arg, c.gout(g), p, stream, mask], ...(c.evalBackward && { when: 'c.train' as const }) });
        if (!c.evalBackward) return [...d.before, train];
        // eval mode: the identity's gradient
        const copy = c.copyKernel(C * HW, d.accum, `eval-mode backward of ${label}: the identity`);
        return [...d.before, train, c.call(g, { kernel: copy, args: [d.arg, c.gout(g)], when: '!c.train' })];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      if (!train) return ['  // dropout: identity in eval'];
      const N = numel(n.shape);
      const k = c.kernel(K.dropoutFwd(spec(n)));
      return [
        c.launch(k, `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [
          c.val(n.inputs[0], true),
          c.val(n.id, true),
          'm->sc',
          `m->dmask[${n.attrs.stream}]`,
          'B',
        ]),
      ];
    },
    backward(g, c, gout) {
      const n = g.head;
      const x = n.inputs[0];
      if (!c.need(x)) return [];
      // eval mode: the identity
      if (c.evalPass) {
        const L: string[] = [];
        c.identity(x, gout, L);
        return L;
      }
      const N = numel(n.shape);
      const { out, base } = c.contrib(x);
      return [
        c.launch(c.kernel(K.dropoutBwd(spec(n))), `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [
          gout,
          base ?? 'nullptr',
          out,
          'm->sc',
          `m->dmask[${n.attrs.stream}]`,
          'B',
        ]),
      ];
    },
  },
};

function spec(n: DropoutNode): K.DropoutSpec {
  return {
    n: numel(n.shape),
    C: n.attrs.channelwise ? n.shape[0] : 1,
    p: n.attrs.p,
    channelwise: n.attrs.channelwise,
    stream: n.attrs.stream,
  };
}
