// binary: a + b, a − b, a · b elementwise, with PyTorch's broadcasting over
// the per-sample dims (a squeeze-excitation gate [C, 1, 1] times [C, H, W]).
// A number operand is scalar arithmetic, the `affine` elementwise function.
import { showShape } from '../graph/errors.js';
import { numel, type BinaryNode } from '../graph/ir.js';
import { tensorOps, Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import * as K from '../codegen/cuda/kernels.js';
import { NULL_ARG } from '../codegen/cpu/ctx.js';
import { affine } from './unary.js';
import type { OpDef } from './types.js';

export type BinaryFn = BinaryNode['attrs']['fn'];

const SYMBOL: Record<BinaryFn, string> = { add: '+', sub: '-', mul: '*' };

/** The broadcast of two per-sample shapes, or null when they do not broadcast. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(Math.max(x, y));
  }
  return out;
}

export function binaryOp(fn: BinaryFn, a: Tensor, b: Tensor | number): Tensor {
  const t = currentTracer();
  const call = `${fn}`;
  if (!(a instanceof Tensor)) {
    if (typeof a === 'number' && b instanceof Tensor && fn !== 'sub') return binaryOp(fn, b, a);
    t.fail(call, `expects a tensor first, got ${typeof a}`);
  }
  if (typeof b === 'number') {
    if (!Number.isFinite(b)) t.fail(call, `the scalar must be a finite number, got ${b}`);
    if (fn === 'mul') return affine(a, b, 0, `mul(${b})`);
    return affine(a, 1, fn === 'add' ? b : -b, `${fn}(${b})`);
  }
  if (!(b instanceof Tensor)) t.fail(call, `expects a tensor or a number to ${fn}, got ${typeof b}`);
  const shape = broadcastShape(a.sampleShape, b.sampleShape);
  if (!shape)
    t.fail(
      call,
      `cannot broadcast ${showShape(a.sampleShape)} ${SYMBOL[fn]} ${showShape(b.sampleShape)}: each dim must be equal or 1 (aligned at the right)`,
    );
  return t.record({ op: 'binary', inputs: [a.id, b.id], shape: shape!, params: [], attrs: { fn } });
}

tensorOps.binary = binaryOp;

export const add = (a: Tensor, b: Tensor | number): Tensor => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor | number): Tensor => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor | number): Tensor => binaryOp('mul', a, b);

/**
 * Index geometry of a broadcast: the output as [D0, D1, D2] (per-sample shape
 * padded with leading 1s) and each operand's strides in it (0 where it stretches).
 */
export interface Broadcast {
  dims: [number, number, number];
  sa: [number, number, number];
  sb: [number, number, number];
  na: number;
  nb: number;
}

export function broadcastOf(out: readonly number[], a: readonly number[], b: readonly number[]): Broadcast {
  if (out.length > 3) throw new Error(`internal: broadcast of rank ${out.length}`);
  const pad = (s: readonly number[]) => [...Array(3 - s.length).fill(1), ...s] as number[];
  const o = pad(out);
  const strides = (s: readonly number[]): [number, number, number] => {
    const p = pad([...Array(out.length - s.length).fill(1), ...s]);
    const st: [number, number, number] = [0, 0, 0];
    let acc = 1;
    for (let i = 2; i >= 0; i--) {
      st[i] = p[i] === 1 && o[i] !== 1 ? 0 : acc;
      acc *= p[i];
    }
    return st;
  };
  return { dims: [o[0], o[1], o[2]], sa: strides(a), sb: strides(b), na: numel(a), nb: numel(b) };
}

/** For each output element of one sample, its element in a and in b. */
function indexMaps(g: Broadcast): { ia: Int32Array; ib: Int32Array } {
  const [D0, D1, D2] = g.dims;
  const ia = new Int32Array(D0 * D1 * D2);
  const ib = new Int32Array(D0 * D1 * D2);
  let k = 0;
  for (let i = 0; i < D0; i++)
    for (let j = 0; j < D1; j++)
      for (let l = 0; l < D2; l++, k++) {
        ia[k] = i * g.sa[0] + j * g.sa[1] + l * g.sa[2];
        ib[k] = i * g.sb[0] + j * g.sb[1] + l * g.sb[2];
      }
  return { ia, ib };
}

function geometry(n: BinaryNode, xShape: number[][]): Broadcast {
  return broadcastOf(n.shape, xShape[0], xShape[1]);
}

export const binary: OpDef<BinaryNode> = {
  /** out[b, i] = a[b, ia(i)] ∘ b[b, ib(i)];  out [B, ...shape], a [B, ...shapeA], b [B, ...shapeB] */
  forward(n, c) {
    const geo = geometry(n, c.xShape);
    const { ia, ib } = indexMaps(geo);
    const [a, b] = c.x;
    const N = ia.length;
    for (let s = 0; s < c.B; s++)
      for (let i = 0; i < N; i++) {
        const u = a[s * geo.na + ia[i]];
        const v = b[s * geo.nb + ib[i]];
        c.out[s * N + i] = n.attrs.fn === 'add' ? u + v : n.attrs.fn === 'sub' ? u - v : u * v;
      }
    return {};
  },
  /** da[ia(i)] += dout[i] · ∂/∂a, db[ib(i)] += dout[i] · ∂/∂b (sums over the stretched positions) */
  backward(n, c) {
    const geo = geometry(n, c.xShape);
    const { ia, ib } = indexMaps(geo);
    const [a, b] = c.x;
    const da = c.dx(0);
    const db = c.dx(1);
    const N = ia.length;
    for (let s = 0; s < c.B; s++)
      for (let i = 0; i < N; i++) {
        const d = c.dout[s * N + i];
        const ja = s * geo.na + ia[i];
        const jb = s * geo.nb + ib[i];
        const fa = n.attrs.fn === 'mul' ? b[jb] : 1;
        const fb = n.attrs.fn === 'mul' ? a[ja] : n.attrs.fn === 'sub' ? -1 : 1;
        if (da) da[ja] += d * fa;
        if (db) db[jb] += d * fb;
      }
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const [a, b] = n.inputs;
      const N = numel(n.shape);
      const same = c.shape(a).join() === n.shape.join() && c.shape(b).join() === n.shape.join();
      if (same && n.attrs.fn === 'add') {
        c.forward(g, {
          kernel: c.kernel({
            kind: 'add_fwd',
            fn: 'tk::add_fwd',
            consts: [['N', N]],
            params: [
              ['float*', 'out'],
              ['const float*', 'a'],
              ['const float*', 'b'],
            ],
            scratch: '0',
            doc: [`add on [B, ${n.shape.join(', ')}]`],
          }),
          args: [c.val(n.id), c.val(a), c.val(b)],
        });
        return () => [a, b].flatMap((v) => (c.needsGrad(v) ? c.passThrough(g, v) : []));
      }
      const geo = broadcastOf(n.shape, c.shape(a), c.shape(b));
      const consts: [string, number | string][] = [
        ['D0', geo.dims[0]],
        ['D1', geo.dims[1]],
        ['D2', geo.dims[2]],
        ['SA0', geo.sa[0]],
        ['SA1', geo.sa[1]],
        ['SA2', geo.sa[2]],
        ['SB0', geo.sb[0]],
        ['SB1', geo.sb[1]],
        ['SB2', geo.sb[2]],
        ['NA', geo.na],
        ['NB', geo.nb],
        ['OP', `tk::BIN_${n.attrs.fn.toUpperCase()}`],
      ];
      const doc = [
        `${n.attrs.fn} [B, ${c.shape(a).join(', ')}] ${SYMBOL[n.attrs.fn]} [B, ${c.shape(b).join(', ')}] -> [B, ${n.shape.join(', ')}]`,
      ];
      c.forward(g, {
        kernel: c.kernel({
          kind: 'binary_fwd',
          fn: 'tk::binary_fwd',
          consts,
          params: [
            ['float*', 'out'],
            ['const float*', 'a'],
            ['const float*', 'b'],
          ],
          scratch: '0',
          doc,
        }),
        args: [c.val(n.id), c.val(a), c.val(b)],
      });
      if (!c.needsGrad(a) && !c.needsGrad(b)) return undefined;
      return () => {
        const da = c.needsGrad(a) ? c.contrib(a) : null;
        const db = c.needsGrad(b) ? c.contrib(b) : null;
        const kernel = c.kernel({
          kind: 'binary_bwd',
          fn: 'tk::binary_bwd',
          consts: [
            ...consts,
            ['NEED_A', String(!!da)],
            ['ACCUM_A', String(!!da?.accum)],
            ['NEED_B', String(!!db)],
            ['ACCUM_B', String(!!db?.accum)],
          ],
          params: [
            ['float*', 'da'],
            ['float*', 'db'],
            ['const float*', 'gy'],
            ['const float*', 'a'],
            ['const float*', 'b'],
          ],
          scratch: '0',
          doc: [`backward of ${doc[0]}`],
        });
        return [
          ...(da?.before ?? []),
          ...(db?.before ?? []),
          c.call(g, { kernel, args: [da?.arg ?? NULL_ARG, db?.arg ?? NULL_ARG, c.gout(g), c.val(a), c.val(b)] }),
        ];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      const [a, b] = n.inputs;
      const N = numel(n.shape);
      const grid = `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`;
      const geo = broadcastOf(n.shape, c.graph.nodes[a].shape, c.graph.nodes[b].shape);
      const same = geo.na === N && geo.nb === N;
      const k = same && n.attrs.fn === 'add' ? K.addFwd(N) : K.binaryFwd(n.attrs.fn, geo);
      return [c.launch(c.kernel(k), grid, [c.val(a, train), c.val(b, train), c.val(n.id, train), 'B'])];
    },
    backward(g, c, gout) {
      const n = g.head;
      const [a, b] = n.inputs;
      const L: string[] = [];
      const sa = c.graph.nodes[a].shape;
      const sb = c.graph.nodes[b].shape;
      const geo = broadcastOf(n.shape, sa, sb);
      [a, b].forEach((v, side) => {
        if (!c.need(v)) return;
        const full = c.graph.nodes[v].shape.join() === n.shape.join();
        if (n.attrs.fn === 'add' && full) return c.identity(v, gout, L);
        const { out, base } = c.contrib(v);
        const count = numel(c.graph.nodes[v].shape);
        L.push(
          c.launch(c.kernel(K.binaryBwd(n.attrs.fn, geo, side as 0 | 1)), `dim3(tk_cdiv(B * ${count}, ${K.THREADS}))`, [
            gout,
            c.val(a, true),
            c.val(b, true),
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
