// From a traced Graph to the CPU backend's execution plan:
//   1. fusion (src/codegen/middle.ts, with the CPU's policy below);
//   2. each group's op renders its kernels and calls (src/ops/<op>.ts, `cpu`),
//      its backward rendered later in reverse order, so gradient accumulation
//      is decided statically (the first contribution writes, later ones add);
//   3. kernels are deduplicated by signature, so repeated blocks share one kernel;
//   4. a static memory plan: every batch-sized buffer gets an offset in one
//      arena, buffers whose lifetimes do not overlap share space.
// The result is typed data; emit.ts renders it as C++.
import { numel, type Graph, type Node, type PoolNode, type UnaryNode } from '../../graph/ir.js';
import { actDef, describeAct } from '../../ops/activations.js';
import { cArith, vecArith } from '../../ops/expr.js';
import { cpuConvPools } from '../../ops/conv2d.js';
import { opOf } from '../../ops/index.js';
import type { Tap } from '../../graph/taps.js';
import { fuse, fusableAct, GradFlow, monotoneAct, needsGrad, tapStorage, type FusionPolicy, type Group } from '../middle.js';
import {
  fmtShape,
  where,
  type Arg,
  type Call,
  type CpuContribution,
  type CpuCtx,
  type Kernel,
  type KernelSpec,
  type NewCall,
} from './ctx.js';

export type { Arg, Call, Kernel } from './ctx.js';

export interface Buffer {
  name: string;
  /** bytes per sample (rounded to 64), the arena holds maxBatch samples */
  bytes: number;
  /** bytes from one sample to the next: the unrounded size, as the kernels index */
  stride: number;
  elem: 'float' | 'uint8_t';
  first: number;
  last: number;
  /** bytes per sample from the arena start (the address is offset × max batch) */
  offset: number;
}

export interface ParamInfo {
  name: string;
  /** index in Graph.state */
  index: number;
  numel: number;
  /** offset in the flat parameter array */
  offset: number;
  /** the per-thread partial gradient keeps VW lanes per element (the tuned conv kernels) */
  vec: boolean;
}

export interface BufferStateInfo {
  name: string;
  index: number;
  numel: number;
  dtype: 'F32' | 'I64';
  offset: number;
}

/** A C++ struct with the activation's forward and derivatives on SIMD vectors (tk_runtime's functor protocol). */
export interface Functor {
  name: string;
  code: string;
}

export interface Plan {
  graph: Graph;
  kernels: Kernel[];
  functors: Functor[];
  forward: Call[];
  backward: Call[];
  loss: { logits: string; dlogits: string; classes: number; barrier: boolean };
  buffers: Buffer[];
  arenaBytesPerSample: number;
  params: ParamInfo[];
  paramFloats: number;
  fbuffers: BufferStateInfo[];
  ibuffers: BufferStateInfo[];
  /** doubles per thread for BatchNorm partial sums */
  redPerThread: number;
  inputNumel: number;
  classes: number;
  /** fused groups, for reports */
  groups: string[];
  /** the arena buffer holding d loss / d input after a train step (plans made with inputGrad) */
  inputGrad?: string;
  /** values kept readable after a forward (PlanOptions.taps): the arena buffer of each, or null for the model input */
  taps: PlanTap[];
}

export interface PlanTap {
  name: string;
  node: number;
  shape: number[];
  buffer: string | null;
}

export interface PlanOptions {
  /**
   * also compute the gradient of the loss with respect to the model input (saliency, attacks, gen check's grad_input),
   * in train steps and, with eval-mode kernels for BatchNorm and dropout, in eval mode
   */
  inputGrad?: boolean;
  /** values to keep readable after a forward, each a group's own output (src/graph/taps.ts names them) */
  taps?: Tap[];
}

/** 2×2 max pool, stride 2, no padding: what the CPU's fused epilogues pool. */
function isPool2(n: PoolNode): boolean {
  const a = n.attrs;
  return a.kh === 2 && a.kw === 2 && a.sh === 2 && a.sw === 2 && a.ph === 0 && a.pw === 0;
}

/** What the CPU kernels fuse: conv/linear/BatchNorm + act; conv + act + 2×2 pool; BatchNorm + act + (2×2 pool | residual add). */
export const cpuPolicy: FusionPolicy = {
  act: (head, act) => (head.op === 'conv2d' || head.op === 'linear' || head.op === 'batchnorm') && fusableAct(act),
  pool(head, act, pool) {
    if (!isPool2(pool) || !monotoneAct(act)) return false;
    if (head.op === 'conv2d') return cpuConvPools(head);
    if (head.op === 'batchnorm') return head.shape.length === 3 && head.shape[1] % 2 === 0 && head.shape[2] % 2 === 0;
    return false;
  },
  // the BatchNorm kernel recomputes the act's derivative from its input, which tanh makes costly
  add: (head, act) => head.op === 'batchnorm' && (!act || act.attrs.fn !== 'tanh'),
};

/** A functor's C++ name: one per distinct activation and parameters. */
function functorName(a: UnaryNode): string {
  const p = Object.values(a.attrs.p)
    .map((v) => String(v).replace(/[^A-Za-z0-9]/g, '_'))
    .join('_');
  return `Act_${a.attrs.fn}${p ? `_${p}` : ''}`;
}

function functorCode(a: UnaryNode, name: string): string {
  const d = actDef(a.attrs.fn);
  const p = a.attrs.p;
  const lines = [
    `// ${describeAct(a.attrs.fn, p)}`,
    `struct ${name} {`,
    `  static constexpr bool none = false;`,
    `  static TK_INLINE vf f(vf x) { return ${d.f(vecArith, 'x', p)}; }`,
    `  static TK_INLINE vf dx(vf x) { return ${d.dx(vecArith, 'x', p)}; }`,
  ];
  if (d.dy && (!d.dyValid || d.dyValid(p))) {
    lines.push(`  static TK_INLINE vf dy(vf y) { return ${d.dy(vecArith, 'y', p)}; }`);
    // the same formula on one float: the scalar loops (pooled BatchNorm backward, linear backward) call it per element
    lines.push(`  static TK_INLINE float dy1(float y) { return ${d.dy(cArith, 'y', p)}; }`);
  }
  lines.push('};');
  return lines.join('\n');
}

class CpuPlanner implements CpuCtx {
  readonly kernels: Kernel[] = [];
  readonly functors = new Map<string, Functor>();
  readonly forwardCalls: Call[] = [];
  readonly params: ParamInfo[] = [];
  readonly fbuffers: BufferStateInfo[] = [];
  readonly ibuffers: BufferStateInfo[] = [];
  readonly bufs = new Map<string, { bytes: number; elem: 'float' | 'uint8_t' }>();
  redDoubles = 0;
  paramFloats = 0;
  readonly evalBackward: boolean;
  private readonly bySig = new Map<string, Kernel>();
  private readonly need: boolean[];
  /** value id -> the value whose storage it is (reshapes are views) */
  private readonly storage = new Map<number, number>();
  private readonly flow = new GradFlow((v) => this.gradName(v));
  private readonly vec = new Map<string, boolean>();

  constructor(
    readonly graph: Graph,
    inputGrad: boolean,
  ) {
    this.evalBackward = inputGrad;
    this.need = needsGrad(graph, inputGrad);
    for (const n of graph.nodes) if (n.op === 'reshape') this.storage.set(n.id, this.root(n.inputs[0]));
    let pOff = 0;
    let fOff = 0;
    let iOff = 0;
    graph.state.forEach((s, index) => {
      const ne = numel(s.shape);
      if (s.kind === 'param') {
        this.params.push({ name: s.name, index, numel: ne, offset: pOff, vec: false });
        pOff += ne;
      } else if (s.dtype === 'I64') {
        this.ibuffers.push({ name: s.name, index, numel: ne, dtype: 'I64', offset: iOff });
        iOff += ne;
      } else {
        this.fbuffers.push({ name: s.name, index, numel: ne, dtype: 'F32', offset: fOff });
        fOff += ne;
      }
    });
    this.paramFloats = pOff;
  }

  private root(v: number): number {
    return this.storage.get(v) ?? v;
  }

  private gradName(v: number): string {
    const name = `g${v}`;
    if (!this.bufs.has(name)) this.bufs.set(name, { bytes: numel(this.graph.nodes[v].shape) * 4, elem: 'float' });
    return name;
  }

  shape(v: number): number[] {
    return this.graph.nodes[v].shape;
  }

  val(v: number): Arg {
    const r = this.root(v);
    if (r === 0) return { expr: 'x' };
    const name = `v${r}`;
    if (!this.bufs.has(name)) this.bufs.set(name, { bytes: numel(this.graph.nodes[r].shape) * 4, elem: 'float' });
    return { buf: name };
  }

  argmax(v: number): Arg {
    const name = `am${v}`;
    if (!this.bufs.has(name)) this.bufs.set(name, { bytes: numel(this.graph.nodes[v].shape), elem: 'uint8_t' });
    return { buf: name };
  }

  private paramIndex(name: string): number {
    const i = this.params.findIndex((p) => p.name === name);
    if (i < 0) throw new Error(`internal: no parameter '${name}'`);
    return i;
  }

  param(name: string): Arg {
    const p = this.params.find((q) => q.name === name);
    if (p) return { expr: `m->P + ${p.offset}` };
    return this.fbuf(name);
  }

  pgrad(name: string, vec = false): Arg {
    const i = this.paramIndex(name);
    const was = this.vec.get(name);
    if (was !== undefined && was !== vec) throw new Error(`internal: '${name}' is used by kernels with different gradient layouts`);
    this.vec.set(name, vec);
    this.params[i].vec = vec;
    return { expr: `c.gp + GPO(${i})` };
  }

  fbuf(name: string): Arg {
    const b = this.fbuffers.find((q) => q.name === name);
    if (!b) throw new Error(`internal: no float buffer '${name}'`);
    return { expr: `m->FB + ${b.offset}` };
  }

  ibuf(name: string): Arg {
    const b = this.ibuffers.find((q) => q.name === name);
    if (!b) throw new Error(`internal: no int64 buffer '${name}'`);
    return { expr: `m->IB + ${b.offset}` };
  }

  reduce(doubles: number): number {
    const at = this.redDoubles;
    this.redDoubles += doubles;
    return at;
  }

  needsGrad(v: number): boolean {
    return this.need[v];
  }

  /** the group being rendered: its first kernel use is documented */
  current: Group | null = null;

  kernel(spec: KernelSpec): Kernel {
    const signature = `${spec.kind}<${spec.consts.map((c) => c[1]).join(',')}>`;
    let k = this.bySig.get(signature);
    if (!k) {
      const doc = this.current ? [...spec.doc, `first use: ${where(this.current.head)}`] : spec.doc;
      k = { ...spec, doc, id: this.kernels.length, signature };
      this.kernels.push(k);
      this.bySig.set(signature, k);
    }
    return k;
  }

  act(a: UnaryNode | undefined): string {
    if (!a) return 'tk::ActNone';
    const name = functorName(a);
    if (!this.functors.has(name)) this.functors.set(name, { name, code: functorCode(a, name) });
    return name;
  }

  comment(g: Group): string {
    const n = g.head;
    const inShape = this.graph.nodes[n.inputs[0]]?.shape ?? [];
    return `${where(n)}: ${g.nodes.map((m) => opName(m)).join('+')} ${fmtShape(inShape)} -> ${fmtShape(this.shape(g.out))}`;
  }

  call(g: Group, c: NewCall): Call {
    return { ...c, comment: this.comment(g) };
  }

  forward(g: Group, c: NewCall): void {
    this.forwardCalls.push(this.call(g, c));
  }

  gout(g: Pick<Group, 'out'>): { buf: string } {
    const b = this.flow.current(g.out);
    if (!b) throw new Error(`internal: no gradient reached node ${g.out}`);
    return { buf: b };
  }

  /** The arena buffer the loss reads: the output's own, or a copy when the output is a view of the model input. */
  outputBuffer(v: number): { buf: string } {
    const a = this.val(v);
    if ('buf' in a) return a;
    const name = 'vout';
    const N = numel(this.shape(v));
    this.bufs.set(name, { bytes: N * 4, elem: 'float' });
    const kernel = this.copyKernel(N, false, 'the model output is its input: a copy for the loss');
    this.forwardCalls.push({ kernel, args: [{ buf: name }, a], comment: 'the output is a view of the input' });
    return { buf: name };
  }

  copyKernel(N: number, accum: boolean, doc: string): Kernel {
    return this.kernel({
      kind: 'grad_copy',
      fn: 'tk::grad_copy',
      consts: [
        ['N', N],
        ['ACCUM', String(accum)],
      ],
      params: [
        ['float*', 'dst'],
        ['const float*', 'src'],
      ],
      scratch: '0',
      doc: [doc],
    });
  }

  /** Whether any gradient contribution reached value v. */
  reached(v: number): boolean {
    return this.flow.current(v) !== undefined;
  }

  /** The gradient of the model output: written by the loss. */
  seedOutput(v: number): Arg {
    return { buf: this.flow.kernel(v).out };
  }

  contrib(v: number): CpuContribution {
    const c = this.flow.kernel(v);
    if (c.base === undefined) return { arg: { buf: c.out }, accum: false, before: [] };
    if (c.base === c.out) return { arg: { buf: c.out }, accum: true, before: [] };
    // the gradient so far is an alias of another value's: copy it in first
    return { arg: { buf: c.out }, accum: true, before: [this.copyCall(v, c.base, c.out, false)] };
  }

  passThrough(g: Group, v: number): Call[] {
    const src = this.gout(g);
    const c = this.flow.identity(v, (src as { buf: string }).buf);
    if (!c) return [];
    if (c.base === c.out) return [this.copyCall(v, (src as { buf: string }).buf, c.out, true)];
    return [this.copyCall(v, c.base!, c.out, false), this.copyCall(v, (src as { buf: string }).buf, c.out, true)];
  }

  private copyCall(v: number, from: string, to: string, accum: boolean): Call {
    const kernel = this.copyKernel(numel(this.shape(v)), accum, `gradient pass-through on [B, ${this.shape(v).join(', ')}]`);
    const n = this.graph.nodes[v];
    return { kernel, args: [{ buf: to }, { buf: from }], comment: `${where(n)}: gradient of ${opName(n)} ${fmtShape(n.shape)}` };
  }
}

function opName(n: Node): string {
  if (n.op === 'unary') return n.attrs.fn;
  if (n.op === 'binary') return n.attrs.fn;
  return n.op;
}

export function plan(graph: Graph, o: PlanOptions = {}): Plan {
  const p = new CpuPlanner(graph, !!o.inputGrad);
  const groups = fuse(
    graph,
    cpuPolicy,
    tapStorage(
      graph,
      (o.taps ?? []).map((t) => t.node),
    ),
  );
  const describe: string[] = [];
  const bwd: { g: Group; f: () => Call[] }[] = [];
  for (const g of groups) {
    const n = g.head;
    describe.push(
      `${g.nodes.map(opName).join('+')} ${fmtShape(graph.nodes[n.inputs[0]]?.shape ?? [])} -> ${fmtShape(graph.nodes[g.out].shape)} (${where(n)})`,
    );
    p.current = g;
    const f = opOf(n).cpu.plan(g as Group<typeof n>, p);
    if (f) bwd.push({ g, f });
  }
  const logits = p.outputBuffer(graph.output);
  const dlogits = p.seedOutput(graph.output) as { buf: string };
  const backward: Call[] = [];
  // a group whose output does not reach the loss gets no gradient: its parameters' stay zero
  for (const { g, f } of [...bwd].reverse()) {
    if (!p.reached(g.out)) continue;
    p.current = g;
    backward.push(...f());
  }
  p.current = null;
  const forward = p.forwardCalls;
  // the input's gradient: zeros when no path from the input reaches the loss
  const inputGrad = o.inputGrad && p.reached(0) ? p.gout({ out: 0 }).buf : undefined;
  if (o.inputGrad && !inputGrad) throw new Error(`${graph.name}: the loss does not depend on the input, so it has no input gradient`);

  const taps = (o.taps ?? []).map((t) => {
    const a = p.val(t.node);
    return { ...t, buffer: 'buf' in a ? a.buf : null };
  });

  // ---------------------------------------------------------------- memory plan
  // schedule slots: a train/eval pair of variants shares one slot
  const fslot = slotsOf(forward, 0);
  const nf = forward.length ? fslot[fslot.length - 1] + 1 : 0;
  const lossStep = nf;
  const bslot = slotsOf(backward, lossStep + 1);
  const steps: Call[][] = Array.from({ length: backward.length ? bslot[bslot.length - 1] + 1 : lossStep + 1 }, () => [] as Call[]);
  forward.forEach((c, i) => steps[fslot[i]].push(c));
  backward.forEach((c, i) => steps[bslot[i]].push(c));
  const life = new Map<string, [number, number]>();
  const touch = (name: string, t: number) => {
    const l = life.get(name);
    life.set(name, l ? [Math.min(l[0], t), Math.max(l[1], t)] : [t, t]);
  };
  steps.forEach((s, t) => s.forEach((c) => c.args.forEach((a) => 'buf' in a && touch(a.buf, t))));
  touch(logits.buf, lossStep);
  touch(dlogits.buf, lossStep);
  // read after the step: alive to the end
  if (inputGrad) touch(inputGrad, steps.length);
  for (const t of taps) if (t.buffer) touch(t.buffer, steps.length);
  const buffers: Buffer[] = [...p.bufs].map(([name, b]) => ({
    name,
    bytes: Math.ceil(b.bytes / 64) * 64,
    stride: b.bytes,
    elem: b.elem,
    first: life.get(name)?.[0] ?? lossStep,
    last: life.get(name)?.[1] ?? lossStep,
    offset: 0,
  }));
  const arenaBytesPerSample = allocate(buffers);
  // Threads own batch slices; sample b of a buffer lives at offset·maxBatch + b·stride.
  // When a buffer reuses memory of a dead one with another offset or stride, a
  // thread could write its slice of the new buffer over another thread's slice
  // of the old one still in use: a barrier must separate them. The stride is the
  // unrounded size: two buffers of one rounded size still place samples apart.
  const barrierAt = new Set<number>();
  for (const x of buffers)
    for (const y of buffers)
      if (
        y !== x &&
        y.last < x.first &&
        x.offset < y.offset + y.bytes &&
        y.offset < x.offset + x.bytes &&
        (x.offset !== y.offset || x.stride !== y.stride)
      )
        barrierAt.add(x.first);
  const flagged = (c: Call, t: number): Call => (barrierAt.has(t) ? { ...c, barrier: true } : c);

  return {
    graph,
    kernels: p.kernels,
    functors: [...p.functors.values()],
    forward: forward.map((c, i) => flagged(c, fslot[i])),
    backward: backward.map((c, i) => flagged(c, bslot[i])),
    loss: { logits: logits.buf, dlogits: dlogits.buf, classes: graph.nodes[graph.output].shape[0], barrier: barrierAt.has(lossStep) },
    buffers,
    arenaBytesPerSample,
    params: p.params,
    paramFloats: p.paramFloats,
    fbuffers: p.fbuffers,
    ibuffers: p.ibuffers,
    redPerThread: p.redDoubles,
    inputNumel: numel(graph.inputShape),
    classes: graph.nodes[graph.output].shape[0],
    groups: describe,
    inputGrad,
    taps,
  };
}

/** The schedule slot of each call from `first` on: an eval variant ('!c.train') shares its train twin's. */
function slotsOf(calls: Call[], first: number): number[] {
  const slot: number[] = [];
  calls.forEach((c, i) => slot.push(i === 0 ? first : c.when === '!c.train' ? slot[i - 1] : slot[i - 1] + 1));
  return slot;
}

/** Greedy best-fit offsets (bytes per sample) for buffers with lifetimes; returns the arena size per sample. */
function allocate(buffers: Buffer[]): number {
  const placed: Buffer[] = [];
  const order = [...buffers].sort((a, b) => b.bytes - a.bytes || a.first - b.first || (a.name < b.name ? -1 : 1));
  let top = 0;
  for (const b of order) {
    const busy = placed.filter((p) => !(p.last < b.first || b.last < p.first)).sort((x, y) => x.offset - y.offset);
    let off = 0;
    for (const p of busy) {
      if (off + b.bytes <= p.offset) break;
      off = Math.max(off, p.offset + p.bytes);
    }
    b.offset = off;
    top = Math.max(top, off + b.bytes);
    placed.push(b);
  }
  return top;
}
