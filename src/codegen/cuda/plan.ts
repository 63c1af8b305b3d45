// Fusion groups for the CUDA backend: which graph nodes share one kernel.
//
//   conv2d [→ relu|tanh] [→ maxpool (window = stride, no padding)]
//   batchnorm2d [→ relu|tanh] [→ maxpool (same rule) | → add (a residual computed earlier)]
//   linear [→ relu|tanh]
//   everything else alone (pool, relu/tanh, add, dropout, reshape = a view).
//
// A node is fused into its producer only when it is the producer's single
// consumer and the producer is not the model output. Groups are ordered by
// their first node, which is a topological order of the group graph.
import { numel, type BatchNormNode, type Conv2dNode, type Graph, type LinearNode, type Node, type PoolNode } from '../../graph/ir.js';
import type { Act, Epilogue, FusedPool } from './kernels.js';

export type Group =
  | { kind: 'conv'; node: Conv2dNode; act: Act; pool: PoolNode | null; input: number; out: number }
  | { kind: 'linear'; node: LinearNode; act: Act; input: number; out: number }
  | {
      kind: 'bn';
      node: BatchNormNode;
      act: Act;
      pool: PoolNode | null;
      input: number;
      out: number;
      add: { node: Node; other: number } | null;
    }
  | { kind: 'single'; node: Node; out: number };

export function consumers(g: Graph): Node[][] {
  const c: Node[][] = g.nodes.map(() => []);
  for (const n of g.nodes) for (const i of n.inputs) c[i].push(n);
  return c;
}

function fusablePool(n: Node): n is PoolNode {
  return (
    n.op === 'maxpool2d' &&
    n.attrs.kh === n.attrs.sh &&
    n.attrs.kw === n.attrs.sw &&
    n.attrs.ph === 0 &&
    n.attrs.pw === 0 &&
    n.attrs.kh * n.attrs.kw <= 255
  );
}

export function fuse(g: Graph): Group[] {
  const cons = consumers(g);
  const taken = new Set<number>();
  const groups: Group[] = [];
  const single = (id: number): Node | null => (cons[id].length === 1 && id !== g.output ? cons[id][0] : null);
  for (const n of g.nodes) {
    if (n.op === 'input' || taken.has(n.id)) continue;
    if (n.op === 'conv2d' || n.op === 'batchnorm2d' || n.op === 'linear') {
      let cur: Node = n;
      let act: Act = 'none';
      let pool: PoolNode | null = null;
      const a = single(cur.id);
      if (a && (a.op === 'relu' || a.op === 'tanh')) {
        act = a.op;
        cur = a;
        taken.add(a.id);
      }
      if (n.op !== 'linear') {
        const p = single(cur.id);
        if (p && fusablePool(p)) {
          pool = p;
          cur = p;
          taken.add(p.id);
        }
      }
      // batchnorm [+ act] + residual add (the other summand computed before the batchnorm runs)
      let add: { node: Node; other: number } | null = null;
      if (n.op === 'batchnorm2d' && !pool) {
        const s = single(cur.id);
        if (s && s.op === 'add' && s.inputs[0] !== s.inputs[1]) {
          const other = s.inputs[0] === cur.id ? s.inputs[1] : s.inputs[0];
          if (other < n.id) {
            add = { node: s, other };
            cur = s;
            taken.add(s.id);
          }
        }
      }
      if (n.op === 'conv2d') groups.push({ kind: 'conv', node: n, act, pool, input: n.inputs[0], out: cur.id });
      else if (n.op === 'batchnorm2d') groups.push({ kind: 'bn', node: n, act, pool, input: n.inputs[0], out: cur.id, add });
      else groups.push({ kind: 'linear', node: n, act, input: n.inputs[0], out: cur.id });
      continue;
    }
    groups.push({ kind: 'single', node: n, out: n.id });
  }
  return groups;
}

/** The epilogue of a conv or bn group: its act, fused pool or residual add over the producer's [C, H, W] output. */
export function epilogueOf(grp: { node: Node; act: Act; pool: PoolNode | null; add?: { node: Node; other: number } | null }): Epilogue {
  const [C, H, W] = grp.node.shape;
  let pool: FusedPool | null = null;
  if (grp.pool) pool = { kh: grp.pool.attrs.kh, kw: grp.pool.attrs.kw, oh: grp.pool.shape[1], ow: grp.pool.shape[2] };
  return { act: grp.act, pool, C, H, W, add: !!grp.add };
}

/** Values whose gradient matters: produced (transitively) from some parameter. */
export function needsGrad(g: Graph): boolean[] {
  const need = g.nodes.map(() => false);
  for (const n of g.nodes) {
    const hasParam = n.params.length > 0 && n.op !== 'input';
    need[n.id] = hasParam || n.inputs.some((i) => need[i]);
  }
  return need;
}

export function perSample(n: Node): number {
  return numel(n.shape);
}
