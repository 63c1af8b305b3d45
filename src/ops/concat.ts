// concat: torch.cat(tensors, 1), stacking along the channel dim (DenseNet, Inception).
import { showShape } from '../graph/errors.js';
import { numel, type ConcatNode } from '../graph/ir.js';
import { Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import type { Call } from '../codegen/cpu/ctx.js';
import type { OpDef } from './types.js';

export function cat(tensors: Tensor[], dim = 1): Tensor {
  const t = currentTracer();
  const call = `cat([...], ${dim})`;
  if (!Array.isArray(tensors) || tensors.length === 0 || !tensors.every((x) => x instanceof Tensor))
    t.fail(call, 'expects a non-empty array of tensors');
  const rank = tensors[0].sampleShape.length;
  if (dim !== 1 && dim !== 1 - (rank + 1)) t.fail(call, `only dim 1 (channels, or features of a [B, n] input) is supported, got ${dim}`);
  if (tensors.length === 1) return tensors[0];
  const rest = tensors[0].sampleShape.slice(1).join();
  const bad = tensors.find((x) => x.sampleShape.length !== rank || x.sampleShape.slice(1).join() !== rest);
  if (bad) t.fail(call, `sizes must match except in dim 1: ${tensors.map((x) => showShape(x.sampleShape)).join(', ')}`);
  const C = tensors.reduce((s, x) => s + x.sampleShape[0], 0);
  return t.record({ op: 'concat', inputs: tensors.map((x) => x.id), shape: [C, ...tensors[0].sampleShape.slice(1)], params: [] });
}

/** Each input's [values per sample, offset of its block in the output sample]. */
function parts(n: ConcatNode, shapes: number[][]): { len: number; off: number }[] {
  let off = 0;
  return shapes.map((s) => {
    const len = numel(s);
    const p = { len, off };
    off += len;
    return p;
  });
}

export const concat: OpDef<ConcatNode> = {
  /** out[b, off_i + j] = x_i[b, j]; out [B, N], x_i [B, len_i] (channel blocks are contiguous per sample) */
  forward(n, c) {
    const N = numel(n.shape);
    parts(n, c.xShape).forEach(({ len, off }, i) => {
      for (let b = 0; b < c.B; b++) c.out.set(c.x[i].subarray(b * len, (b + 1) * len), b * N + off);
    });
    return {};
  },
  backward(n, c) {
    const N = numel(n.shape);
    parts(n, c.xShape).forEach(({ len, off }, i) => {
      const d = c.dx(i);
      if (!d) return;
      for (let b = 0; b < c.B; b++) for (let j = 0; j < len; j++) d[b * len + j] += c.dout[b * N + off + j];
    });
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const N = numel(n.shape);
      const ps = parts(
        n,
        n.inputs.map((v) => c.shape(v)),
      );
      ps.forEach(({ len, off }, i) =>
        c.forward(g, {
          kernel: c.kernel({
            kind: 'concat_fwd',
            fn: 'tk::concat_fwd',
            consts: [
              ['N', N],
              ['LEN', len],
              ['OFF', off],
            ],
            params: [
              ['float*', 'out'],
              ['const float*', 'x'],
            ],
            scratch: '0',
            doc: [`copy [B, ${len}] into [B, ${N}] at ${off} (torch.cat)`],
          }),
          args: [c.val(n.id), c.val(n.inputs[i])],
        }),
      );
      if (!n.inputs.some((v) => c.needsGrad(v))) return undefined;
      return () => {
        const calls: Call[] = [];
        ps.forEach(({ len, off }, i) => {
          const v = n.inputs[i];
          if (!c.needsGrad(v)) return;
          const d = c.contrib(v);
          const kernel = c.kernel({
            kind: 'concat_bwd',
            fn: 'tk::concat_bwd',
            consts: [
              ['N', N],
              ['LEN', len],
              ['OFF', off],
              ['ACCUM', String(d.accum)],
            ],
            params: [
              ['float*', 'dx'],
              ['const float*', 'gy'],
            ],
            scratch: '0',
            doc: [`gradient of a torch.cat input: [B, ${len}] from [B, ${N}] at ${off}`],
          });
          calls.push(...d.before, c.call(g, { kernel, args: [d.arg, c.gout(g)] }));
        });
        return calls;
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      const N = numel(n.shape);
      return parts(
        n,
        n.inputs.map((v) => c.graph.nodes[v].shape),
      ).map(({ len, off }, i) =>
        c.launch(c.kernel(K.sliceCopy(N, len, off, 'in')), `dim3(tk_cdiv(B * ${len}, ${K.THREADS}))`, [
          c.val(n.inputs[i], train),
          'nullptr',
          c.val(n.id, train),
          'B',
        ]),
      );
    },
    backward(g, c, gout) {
      const n = g.head;
      const N = numel(n.shape);
      const L: string[] = [];
      parts(
        n,
        n.inputs.map((v) => c.graph.nodes[v].shape),
      ).forEach(({ len, off }, i) => {
        const v = n.inputs[i];
        if (!c.need(v)) return;
        const { out, base } = c.contrib(v);
        L.push(
          c.launch(c.kernel(K.sliceCopy(N, len, off, 'out')), `dim3(tk_cdiv(B * ${len}, ${K.THREADS}))`, [
            gout,
            base ?? 'nullptr',
            out,
            'B',
          ]),
        );
      });
      return L;
    },
  },
};
