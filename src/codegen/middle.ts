// The middle end both code generators share: which nodes fuse into one kernel
// (with a policy per backend), which values need gradients, and where each
// gradient contribution goes. It produces plain data; the CPU and CUDA
// renderers turn it into calls of their kernels.
import type { BinaryNode, Graph, Node, PoolNode, UnaryNode } from '../graph/ir.js';
import { hasDy, actDef } from '../ops/activations.js';

/** Nodes that run as one kernel: a head op and the epilogue fused after it. */
export interface Group<N extends Node = Node> {
  head: N;
  /** an elementwise function applied to the head's output */
  act?: UnaryNode;
  /** a max pool of the (activated) output */
  pool?: PoolNode;
  /** a residual add after the act: out = act(head) + other, `other` computed before the head */
  add?: { node: BinaryNode; other: number };
  /** id of the group's last node, whose value the group stores */
  out: number;
  nodes: Node[];
}

/** What a backend's kernels can take after a head op. Each answer is for one candidate epilogue node. */
export interface FusionPolicy {
  act(head: Node, act: UnaryNode): boolean;
  pool(head: Node, act: UnaryNode | undefined, pool: PoolNode): boolean;
  add(head: Node, act: UnaryNode | undefined, add: BinaryNode, other: number): boolean;
}

/** consumers[v]: the nodes reading value v. */
export function consumers(g: Graph): Node[][] {
  const c: Node[][] = g.nodes.map(() => []);
  for (const n of g.nodes) for (const i of n.inputs) c[i].push(n);
  return c;
}

/**
 * Groups in graph order (a topological order of the groups). A node joins its
 * producer's group only when it is the producer's single consumer and the
 * producer is neither the model output nor a value to keep (a tap: its group stores it).
 */
export function fuse(g: Graph, policy: FusionPolicy, keep: ReadonlySet<number> = new Set()): Group[] {
  const cons = consumers(g);
  const sole = (id: number): Node | undefined => (cons[id].length === 1 && id !== g.output && !keep.has(id) ? cons[id][0] : undefined);
  const taken = new Set<number>();
  const groups: Group[] = [];
  for (const head of g.nodes) {
    if (head.op === 'input' || taken.has(head.id)) continue;
    const grp: Group = { head, out: head.id, nodes: [head] };
    const take = (m: Node) => {
      taken.add(m.id);
      grp.nodes.push(m);
      grp.out = m.id;
    };
    const a = sole(grp.out);
    if (a?.op === 'unary' && policy.act(head, a)) {
      grp.act = a;
      take(a);
    }
    const m = sole(grp.out);
    if (m && isMaxPool(m) && policy.pool(head, grp.act, m)) {
      grp.pool = m;
      take(m);
    } else if (m?.op === 'binary' && m.attrs.fn === 'add' && m.inputs[0] !== m.inputs[1]) {
      const other = m.inputs[0] === grp.out ? m.inputs[1] : m.inputs[0];
      const same = g.nodes[other].shape.join() === m.shape.join();
      // the kernel reads the other summand while it runs: it must exist by then
      if (same && other < head.id && policy.add(head, grp.act, m, other)) {
        grp.add = { node: m, other };
        take(m);
      }
    }
    groups.push(grp);
  }
  return groups;
}

function isMaxPool(n: Node): n is PoolNode {
  return n.op === 'maxpool2d';
}

/** The values a tap of `nodes` needs stored: each node and, for a view (reshape), the value it views. */
export function tapStorage(g: Graph, nodes: readonly number[]): Set<number> {
  const keep = new Set<number>();
  for (let v of nodes) {
    keep.add(v);
    while (g.nodes[v].op === 'reshape') keep.add((v = g.nodes[v].inputs[0]));
  }
  return keep;
}

/** An activation a fused kernel can apply: its derivative follows from its output alone (the kernel keeps only that). */
export function fusableAct(act: UnaryNode): boolean {
  return hasDy(act.attrs.fn, act.attrs.p);
}

/** max(act(·)) = act(max(·)): a fused kernel may pool before activating. */
export function monotoneAct(act: UnaryNode | undefined): boolean {
  return !act || actDef(act.attrs.fn).monotone(act.attrs.p);
}

/**
 * Values whose gradient is needed: those computed (transitively) from a
 * parameter, and the model input itself when its gradient is asked for.
 */
export function needsGrad(g: Graph, inputGrad = false): boolean[] {
  const need = g.nodes.map(() => false);
  for (const n of g.nodes) need[n.id] = n.op === 'input' ? inputGrad : n.params.length > 0 || n.inputs.some((i) => need[i]);
  return need;
}

/** Where a gradient contribution goes: `out` = `base` + contribution (base absent: a fresh write; base === out: add in place). */
export interface Contribution {
  out: string;
  base?: string;
}

/**
 * The gradient buffers of the backward pass, visited in reverse graph order.
 * A value's first contribution writes its buffer, later ones add to it. A
 * pass-through contribution (add, reshape) first just aliases the upstream
 * buffer, which is then never written: the next contribution goes to the
 * value's own buffer, adding the alias.
 */
export class GradFlow {
  private readonly cur = new Map<number, { buf: string; owned: boolean }>();

  constructor(private readonly own: (v: number) => string) {}

  /** The buffer holding v's gradient so far (for reading), if any contribution arrived. */
  current(v: number): string | undefined {
    return this.cur.get(v)?.buf;
  }

  /** A kernel writes a contribution to v's gradient. */
  kernel(v: number): Contribution {
    const st = this.cur.get(v);
    const out = this.own(v);
    this.cur.set(v, { buf: out, owned: true });
    return st ? { out, base: st.buf } : { out };
  }

  /** v's gradient receives `src` unchanged: null when it can simply alias src (no kernel). */
  identity(v: number, src: string): Contribution | null {
    if (!this.cur.has(v)) {
      this.cur.set(v, { buf: src, owned: false });
      return null;
    }
    return this.kernel(v);
  }
}
