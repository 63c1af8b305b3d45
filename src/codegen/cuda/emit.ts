// The CUDA backend: a traced Graph → a standalone CUDA package
//   <name>_cuda.h      C API (create/destroy, forward, train_step, train_epoch, state by name, errors as codes)
//   <name>_cuda.cu     kernels (forward + backward of every op, fused, deduplicated by signature) and host code
//   CMakeLists.txt     CUDA static library (sm_80 + sm_90 + PTX), or a CPU emulation build (-DTK_CUDA_EMU=ON)
//   tk_cuda_emu.h      the CPU emulator of the CUDA subset used (for tests without a GPU)
//
// Training is resident: parameters, gradients, momentum buffers, the dataset
// and the shuffle order live on the device; train_epoch runs every step of an
// epoch with one host synchronisation at the end, each full-size step replayed
// from a CUDA graph captured once per batch size.
import { MAX_CROP_PADDING } from '../../data/augment.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { numel, type BatchNormNode, type Graph, type Node, type PoolNode } from '../../graph/ir.js';
import { isPlainConv } from '../../ops/conv2d.js';
import { opOf } from '../../ops/index.js';
import { emitDts } from '../dts.js';
import { baseView, CODEGEN_VERSION, dropoutView } from '../cpu/emit.js';
import {
  consumers,
  fuse,
  fusableAct,
  GradFlow,
  monotoneAct,
  needsGrad,
  tapStorage,
  type Contribution,
  type FusionPolicy,
  type Group,
} from '../middle.js';
import { render } from '../templates.js';
import type { Tap } from '../../graph/taps.js';
import type { CudaCtx } from './ctx.js';
import * as K from './kernels.js';

export interface CudaOptions {
  /** C identifier: files <name>_cuda.{h,cu}, functions <name>_cuda_* */
  name: string;
  /** largest batch one call accepts; buffers are sized for it */
  maxBatch: number;
  /** train steps also compute d loss / d input, and input_gradient runs a backward in either mode */
  inputGrad?: boolean;
  /** values kept readable after a forward */
  taps?: Tap[];
}

const TEMPLATES = fileURLToPath(new URL('../../../templates/cuda/', import.meta.url));

/** One device allocation in the arena. */
interface Alloc {
  name: string;
  bytes: number;
  type: string;
}

class Registry {
  private byCode = new Map<string, string>();
  readonly sources: string[] = [];
  get(k: K.KernelSrc): string {
    let name = this.byCode.get(k.code);
    if (!name) {
      name = `k${this.byCode.size}_${k.kind}`;
      this.byCode.set(k.code, name);
      this.sources.push(k.code.replace('KNAME', name));
    }
    return name;
  }
  get count(): number {
    return this.byCode.size;
  }
}

/** Non-overlapping max pooling (window = stride, no padding): what the CUDA epilogues pool. */
function fusablePool(n: PoolNode): boolean {
  const a = n.attrs;
  return a.kh === a.sh && a.kw === a.sw && a.ph === 0 && a.pw === 0 && a.kh * a.kw <= 255;
}

/** What the CUDA kernels fuse: conv/linear/BatchNorm + act; conv/BatchNorm + act + (max pool | BatchNorm: residual add). */
export const cudaPolicy: FusionPolicy = {
  act: (head, act) => (head.op === 'conv2d' || head.op === 'linear' || head.op === 'batchnorm') && fusableAct(act),
  pool: (head, act, pool) =>
    (head.op === 'conv2d' || (head.op === 'batchnorm' && head.shape.length === 3)) && fusablePool(pool) && monotoneAct(act),
  add: (head) => head.op === 'batchnorm',
};

export function emitCudaPackage(graph: Graph, opts: CudaOptions): Map<string, string> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.name)) throw new Error(`CUDA package name must be a C identifier, got '${opts.name}'`);
  if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1 || opts.maxBatch > 65535)
    throw new Error(`maxBatch must be an integer in 1..65535, got ${opts.maxBatch}`);
  return new Emitter(graph, opts).emit();
}

class Emitter implements CudaCtx {
  readonly graph: Graph;
  private readonly g: Graph;
  private readonly name: string;
  readonly maxB: number;
  readonly refB: number;
  private readonly reg = new Registry();
  private readonly allocs: Alloc[] = [];
  private readonly groups: Group[];
  private readonly cons: Node[][];
  private readonly needs: boolean[];
  /** parameter and float-buffer offsets */
  private readonly pOff = new Map<string, number>();
  private readonly sOff = new Map<string, number>();
  private readonly nIdx = new Map<string, number>();
  private pTotal = 0;
  private sTotal = 0;
  private nTotal = 0;
  private bnC = 1;
  private flow = new GradFlow((v) => this.gbuf(v));
  private readonly wantInputGrad: boolean;
  readonly evalBackward: boolean;
  /** rendering the eval-mode backward: values are read as the eval forward left them */
  evalPass = false;
  private readonly taps: Tap[];
  /** device buffer of d loss / d input after a step (packages built with inputGrad) */
  private inputGradBuf: string | undefined;

  constructor(g: Graph, o: CudaOptions) {
    this.g = g;
    this.graph = g;
    this.name = o.name;
    this.maxB = o.maxBatch;
    this.refB = Math.min(o.maxBatch, 64);
    this.taps = o.taps ?? [];
    this.groups = fuse(
      g,
      cudaPolicy,
      tapStorage(
        g,
        this.taps.map((t) => t.node),
      ),
    );
    this.cons = consumers(g);
    this.directInput = this.cons[0].length > 0 && this.cons[0].every((c) => c.op === 'conv2d' && isPlainConv(c)) && g.output !== 0;
    const last = this.groups[this.groups.length - 1];
    const h = last.head;
    if (h.op === 'linear' && !last.act && last.out === g.output && K.headFits(this.maxB, h.attrs.inF, h.attrs.outF)) this.head = last;
    this.needs = needsGrad(g, !!o.inputGrad);
    this.wantInputGrad = !!o.inputGrad;
    this.evalBackward = !!o.inputGrad;
    for (const s of g.state) {
      const n = numel(s.shape);
      if (s.dtype === 'I64') this.nIdx.set(s.name, this.nTotal++);
      else if (s.kind === 'param') {
        this.pOff.set(s.name, this.pTotal);
        this.pTotal += n;
      } else {
        this.sOff.set(s.name, this.sTotal);
        this.sTotal += n;
      }
    }
    if (g.nodes[g.output].shape.length !== 1) throw new Error('the model output must be logits [B, classes]');
  }

  // ---------------------------------------------------------------- buffers

  alloc(name: string, bytes: number, type = 'float'): string {
    if (!this.allocs.some((a) => a.name === name)) this.allocs.push({ name, bytes: Math.max(bytes, 4), type });
    return `m->${name}`;
  }

  P(name: string): string {
    return `(m->P + ${this.pOff.get(name)!})`;
  }
  G(name: string): string {
    return `(m->G + ${this.pOff.get(name)!})`;
  }
  S(name: string): string {
    return `(m->S + ${this.sOff.get(name)!})`;
  }
  counter(name: string): string {
    return `(m->NBT + ${this.nIdx.get(name)!})`;
  }

  need(v: number): boolean {
    return this.needs[v];
  }

  kernel(k: K.KernelSrc): string {
    return this.reg.get(k);
  }

  /** Device pointer holding value v's activations in the given mode (reshapes and eval dropouts are views). */
  val(v: number, mode: boolean): string {
    const train = mode && !this.evalPass;
    const n = this.g.nodes[v];
    // the loss and the host read the output: when it is a view of the input, forward() copies it
    if (v === this.g.output && this.viewOfInput(v, train)) return this.alloc('aout', this.maxB * numel(n.shape) * 4);
    if (n.op === 'input') return 'tk_input';
    if (n.op === 'reshape') return this.val(n.inputs[0], train);
    if (n.op === 'dropout' && !train) return this.val(n.inputs[0], train);
    return this.alloc(`a${v}`, this.maxB * numel(n.shape) * 4);
  }

  // ---------------------------------------------------------------- forward

  launch(k: string, grid: string, args: string[]): string {
    return `  TK_RUN(${k}, ${grid}, dim3(${K.THREADS}), m->stream, ${args.join(', ')});`;
  }

  /** Every consumer of the model input is a plain conv: in a step they read dataset rows through the shuffle order (no gather). */
  private directInput = false;

  rows(v: number): string {
    return v === 0 ? 'tk_rows' : 'nullptr';
  }

  /** The output group when the step runs it inside the head kernel (last linear, no act, small). */
  private head: Group | null = null;
  private headBwd: { dx: string; base: string; acc: string } | null = null;

  isHead(g: Group): boolean {
    return g === this.head;
  }

  setHeadBackward(h: { dx: string; base: string; acc: string }): void {
    this.headBwd = h;
  }

  /** Whether value v is the model input seen through views (reshape, eval dropout). */
  private viewOfInput(v: number, train: boolean): boolean {
    const n = this.g.nodes[v];
    if (n.op === 'input') return true;
    if (n.op === 'reshape' || (n.op === 'dropout' && !train)) return this.viewOfInput(n.inputs[0], train);
    return false;
  }

  private forward(train: boolean, skipHead = false): string[] {
    const L: string[] = [];
    const out = this.g.output;
    if (this.viewOfInput(out, train)) {
      const N = numel(this.g.nodes[out].shape);
      L.push('  // the model output is its input: a copy for the loss');
      L.push(
        this.launch(this.reg.get(K.sliceCopy(N, N, 0, 'in')), `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [
          'tk_input',
          'nullptr',
          this.val(out, train),
          'B',
        ]),
      );
    }
    for (const grp of this.groups) {
      if (skipHead && grp === this.head) continue;
      const n = grp.head;
      L.push(`  // ${n.module || n.op} (${n.source})`);
      L.push(...opOf(n).cuda.forward(grp as Group<typeof n>, this, train));
    }
    return L;
  }

  private fusedStats = new Set<number>();
  private bnPartDoubles = 0;

  /** The BatchNorm node that is a plain conv group's only consumer (no act, no pool), if any. */
  statsConsumer(grp: Group): BatchNormNode | null {
    const h = grp.head;
    if (h.op !== 'conv2d' || !isPlainConv(h) || grp.act || grp.pool || grp.out === this.g.output) return null;
    const users = this.cons[grp.out];
    if (users.length !== 1 || users[0].op !== 'batchnorm' || users[0].shape.length !== 3) return null;
    return users[0];
  }

  fuseStats(bn: BatchNormNode, partDoubles: number): void {
    this.fusedStats.add(bn.id);
    this.bnPartDoubles = Math.max(this.bnPartDoubles, partDoubles);
  }

  hasFusedStats(bn: BatchNormNode): boolean {
    return this.fusedStats.has(bn.id);
  }

  noteChannels(C: number): void {
    this.bnC = Math.max(this.bnC, C);
  }

  // ---------------------------------------------------------------- backward

  private written = new Set<string>();

  private gbuf(v: number): string {
    return this.alloc(`g${v}`, this.maxB * numel(this.g.nodes[v].shape) * 4);
  }

  contrib(v: number): Contribution {
    return this.flow.kernel(v);
  }

  identity(v: number, src: string, L: string[]): void {
    const c = this.flow.identity(v, src);
    if (!c) return;
    const N = numel(this.g.nodes[v].shape);
    L.push(this.launch(this.reg.get(K.accumulate(N)), `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [c.base!, src, c.out, 'B']));
  }

  /** Conv weights whose gradient the SGD kernel sums from partials: one buffer per weight, one slice per use. */
  private convGrads = new Map<string, K.ConvGradSpec & { buf: string; name: string }>();

  wgradUse(n: Extract<Node, { op: 'conv2d' }>, blocks: number): { buf: string; use: number; stride: number } {
    const w = n.params[0];
    let spec = this.convGrads.get(w);
    if (!spec) {
      const [C] = this.g.nodes[n.inputs[0]].shape;
      const KK = C * n.attrs.kh * n.attrs.kw;
      const name = `wp${this.convGrads.size}`;
      const bias = n.attrs.bias;
      spec = {
        name,
        buf: `m->${name}`,
        wOff: this.pOff.get(w)!,
        bOff: bias ? this.pOff.get(n.params[1])! : null,
        O: n.attrs.outC,
        K: KK,
        useBlocks: [],
        stride: K.MAX_SPLITS * n.attrs.outC * (KK + 1),
      };
      this.convGrads.set(w, spec);
      this.written.add(w);
      if (bias) this.written.add(n.params[1]);
    }
    spec.useBlocks.push(blocks);
    return { buf: spec.buf, use: spec.useBlocks.length - 1, stride: spec.stride };
  }

  acc(param: string): string {
    if (this.written.has(param)) return '1';
    this.written.add(param);
    return '0';
  }

  private backward(): string[] {
    const L: string[] = [];
    const out = this.g.output;
    this.flow.kernel(out);
    for (let gi = this.groups.length - 1; gi >= 0; gi--) {
      const grp = this.groups[gi];
      const gout = this.flow.current(grp.out);
      if (!gout) continue;
      const n = grp.head;
      L.push(`  // d ${n.module || n.op} (${n.source})`);
      L.push(...opOf(n).cuda.backward(grp as Group<typeof n>, this, gout));
    }
    if (this.wantInputGrad) {
      this.inputGradBuf = this.flow.current(0);
      if (!this.inputGradBuf) throw new Error(`${this.g.name}: the loss does not depend on the input, so it has no input gradient`);
    }
    // parameters no gradient reached (unused, or cut off from the loss) get zeros, as PyTorch's zero_grad + no contribution
    const zero: string[] = [];
    for (const [p, off] of this.pOff) {
      if (this.written.has(p)) continue;
      const info = this.g.state.find((s) => s.name === p)!;
      zero.push(`  TK_TRY(cudaMemsetAsync(m->G + ${off}, 0, ${numel(info.shape) * 4}, m->stream));`);
    }
    return [...zero, ...L];
  }

  // ---------------------------------------------------------------- package

  /** The loss launch of a step (the head kernel when the last linear runs in it), in the pass being rendered. */
  private lossLaunch(classes: number): string {
    if (this.head && this.headBwd) {
      const h = this.head.head as Extract<Node, { op: 'linear' }>;
      const a = h.attrs;
      const hk = this.reg.get(K.headKernel(a.inF, a.outF, a.bias, this.maxB));
      const p = h.params;
      return this.launch(hk, 'dim3(1)', [
        this.val(h.inputs[0], true),
        this.P(p[0]),
        a.bias ? this.P(p[1]) : 'nullptr',
        this.val(this.g.output, true),
        'tk_labels',
        'tk_rows',
        'm->sc',
        this.G(p[0]),
        a.bias ? this.G(p[1]) : 'nullptr',
        this.headBwd.acc,
        this.headBwd.base,
        this.headBwd.dx,
        'B',
      ]);
    } else {
      return this.launch(this.reg.get(K.lossKernel(classes)), 'dim3(1)', [
        this.val(this.g.output, true),
        'tk_labels',
        'tk_rows',
        `m->g${this.g.output}`,
        'm->sc',
        'B',
      ]);
    }
  }

  /**
   * The eval-mode input gradient (packages built with inputGrad): the eval forward, the loss, then a backward with
   * BatchNorm's running statistics and dropout as the identity, rendered with a gradient flow of its own.
   */
  private evalGradient(classes: number): { loss: string; backward: string[]; grad: string } {
    const kept = { flow: this.flow, written: this.written, headBwd: this.headBwd, grad: this.inputGradBuf };
    this.flow = new GradFlow((v) => this.gbuf(v));
    this.written = new Set();
    this.evalPass = true;
    try {
      const backward = this.backward();
      return { loss: this.lossLaunch(classes), backward, grad: this.inputGradBuf! };
    } finally {
      this.evalPass = false;
      ({ flow: this.flow, written: this.written, headBwd: this.headBwd, grad: this.inputGradBuf } = kept);
    }
  }

  emit(): Map<string, string> {
    const fwdTrain = this.forward(true);
    const fwdStep = this.head ? this.forward(true, true) : fwdTrain;
    const fwdEval = this.forward(false);
    const bwd = this.backward();
    const inN = numel(this.g.inputShape);
    const outNode = this.g.nodes[this.g.output];
    const classes = outNode.shape[0];
    const lossLaunch = this.lossLaunch(classes);
    // the SGD kernel sums the train step's weight-gradient partials only, not the eval backward's
    const trainUses = new Map([...this.convGrads.values()].map((c) => [c.name, c.useBlocks.length]));
    const evalGrad = this.wantInputGrad ? this.evalGradient(classes) : null;
    const gather = this.directInput ? '' : this.reg.get(K.gather(inN));
    const augGather = this.reg.get(K.augmentGather(this.g.inputShape));
    const convs = [...this.convGrads.values()];
    for (const c of convs) this.alloc(c.name, c.useBlocks.length * c.stride * 4);
    const stepConvs = convs.map((c) => ({ ...c, useBlocks: c.useBlocks.slice(0, trainUses.get(c.name)) }));
    const sgd = this.reg.get(K.sgdKernel(this.pTotal, stepConvs));
    const sgdArgs = ['m->P', 'm->G', 'm->M', 'm->V', 'm->sc', 'm->sgdpart', 'B', 'm->counter', 'm->sms', ...convs.map((c) => c.buf)];
    const sgdBlocks = Math.max(1, Math.ceil(this.pTotal / (K.THREADS * K.SGD_ITEMS)));
    // fixed allocations
    this.alloc('x', this.maxB * inN * 4);
    this.alloc('y', this.maxB * 4, 'int');
    this.alloc('augfill', this.g.inputShape[0] * 4);
    this.alloc('P', this.pTotal * 4);
    this.alloc('G', this.pTotal * 4);
    this.alloc('M', this.pTotal * 4);
    this.alloc('V', this.pTotal * 4);
    this.alloc('S', this.sTotal * 4);
    this.alloc('NBT', Math.max(1, this.nTotal) * 8, 'long long');
    this.alloc('sc', 256, 'TkScalars');
    this.alloc('counter', 16, 'unsigned');
    this.alloc('sgdpart', sgdBlocks * 8, 'double');
    this.alloc('bnpart', Math.max(2 * this.bnC * 64, this.bnPartDoubles) * 8, 'double');
    this.alloc('bnsums', 2 * this.bnC * 8, 'double');
    if (evalGrad) {
      // what an input gradient puts back: the gradients of the last step, BatchNorm's buffers and counters
      this.alloc('keepG', this.pTotal * 4);
      this.alloc('keepS', this.sTotal * 4);
      this.alloc('keepN', Math.max(1, this.nTotal) * 8, 'long long');
    }
    const files = new Map<string, string>();
    files.set(`${this.name}_cuda.h`, this.header());
    files.set(
      `${this.name}_cuda.cu`,
      this.source(fwdTrain, fwdStep, fwdEval, bwd, { lossLaunch, gather, augGather, sgd, sgdArgs, sgdBlocks, inN, classes, evalGrad }),
    );
    files.set('CMakeLists.txt', this.cmake());
    files.set('tk_cuda_emu.h', fs.readFileSync(path.join(TEMPLATES, 'tk_cuda_emu.h'), 'utf8'));
    for (const [f, text] of this.nodeFiles(classes)) files.set(f, text);
    return files;
  }

  /** The Node addon's binding and typed wrapper: the CPU packages' templates with cuda on. */
  private nodeFiles(classes: number): Map<string, string> {
    const prefix = `${this.name}_cuda`;
    const info = {
      model: this.g.name,
      name: this.name.replace(/^tk_/, ''),
      prefix,
      backend: 'cuda',
      inputShape: this.g.inputShape,
      classes,
      maxBatch: this.maxB,
      state: this.g.state.map((s) => ({ name: s.name, kind: s.kind, dtype: s.dtype, shape: s.shape })),
      keys: this.g.keys,
      dropout: dropoutView(this.g).dropouts,
      ...(this.taps.length ? { taps: this.taps.map(({ name, node, shape }) => ({ name, node, shape })) } : {}),
      ...(this.wantInputGrad ? { inputGrad: true } : {}),
    };
    const view = { ...baseView(this.g, `${info.name}_cuda`, classes), cuda: true, infoJson: JSON.stringify(info, null, 2) };
    return new Map([
      ['binding.cpp', render('node/binding.cpp.hbs', view)],
      ['index.js', render('js/index.js.hbs', view)],
      ['index.d.ts', emitDts(this.g, prefix, CODEGEN_VERSION, true)],
      ['package.json', render('js/package.json.hbs', view)],
      ['README.md', render('js/README.md.hbs', view)],
    ]);
  }

  /** tk_state_info rows (Graph.state order) and where each lives on the device. */
  private stateRows(): { info: string[]; where: string[]; keys: string[] } {
    const info: string[] = [];
    const where: string[] = [];
    this.g.state.forEach((s) => {
      const shape = [...s.shape, 0, 0, 0, 0].slice(0, 4).join(', ');
      info.push(
        `  {"${s.name}", ${s.kind === 'param' ? 'TK_PARAM' : 'TK_BUFFER'}, ${s.dtype === 'I64' ? 'TK_I64' : 'TK_F32'}, ${s.shape.length}, {${shape}}, ${numel(s.shape)}},`,
      );
      if (s.dtype === 'I64') where.push(`  {TK_WHERE_COUNTER, ${this.nIdx.get(s.name)}},`);
      else if (s.kind === 'param') where.push(`  {TK_WHERE_PARAM, ${this.pOff.get(s.name)}},`);
      else where.push(`  {TK_WHERE_BUFFER, ${this.sOff.get(s.name)}},`);
    });
    const index = new Map(this.g.state.map((s, i) => [s.name, i]));
    const keys = Object.entries(this.g.keys).map(([k, c]) => `  {"${k}", ${index.get(c)}},`);
    return { info, where, keys };
  }

  private header(): string {
    const P = `${this.name}_cuda`;
    const K = this.g.nodes[this.g.output].shape[0];
    return render('cuda/api.h.hbs', {
      P,
      PU: P.toUpperCase(),
      model: this.g.name,
      classes: K,
      lastClass: K - 1,
      inputNumel: numel(this.g.inputShape),
      inputShape: this.g.inputShape.join(', '),
      maxBatch: this.maxB,
    });
  }

  private source(
    fwdTrain: string[],
    fwdStep: string[],
    fwdEval: string[],
    bwd: string[],
    x: {
      lossLaunch: string;
      gather: string;
      augGather: string;
      sgd: string;
      sgdArgs: string[];
      sgdBlocks: number;
      inN: number;
      classes: number;
      evalGrad: { loss: string; backward: string[]; grad: string } | null;
    },
  ): string {
    const P = `${this.name}_cuda`;
    const fields = this.allocs.map((a) => `  ${a.type}* ${a.name} = nullptr;`).join('\n');
    let off = 0;
    const carve: string[] = [];
    for (const a of this.allocs) {
      carve.push(`  m->${a.name} = reinterpret_cast<${a.type}*>(m->arena + ${off});`);
      off += Math.ceil(a.bytes / 256) * 256;
    }
    const arenaBytes = off;
    const rvInit: string[] = [];
    for (const s of this.g.state)
      if (s.kind === 'buffer' && s.dtype === 'F32' && s.name.endsWith('running_var'))
        rvInit.push(`      for (int i = 0; i < ${numel(s.shape)}; i++) ones[${this.sOff.get(s.name)} + i] = 1.f;`);
    const outVal = this.val(this.g.output, true);
    const outValEval = this.val(this.g.output, false);
    const rows = this.stateRows();
    const step = (direct: string, plain: string) => (this.directInput ? direct : plain);
    // both gathers read dataset rows in shuffle order into the step's batch
    const gatherArgs = ['m->data', 'm->labels', 'm->order', 'm->sc', 'm->x', 'm->y', 'B'];
    const gather = this.launch(x.gather, `dim3(tk_cdiv(B * ${x.inN % 4 === 0 ? x.inN / 4 : x.inN}, ${K.THREADS}))`, gatherArgs);
    const augmentLaunch = this.launch(x.augGather, `dim3(tk_cdiv(B * ${x.inN}, ${K.THREADS}))`, [
      ...gatherArgs,
      'm->aug_crop',
      'm->aug_flip',
      'm->augfill',
    ]);
    return render('cuda/model.cu.hbs', {
      ...dropoutView(this.g),
      P,
      model: this.g.name,
      kernelCount: this.reg.count,
      nodeCount: this.g.nodes.length,
      maxBatch: this.maxB,
      inputNumel: x.inN,
      classes: x.classes,
      paramFloats: this.pTotal,
      bufferFloats: this.sTotal,
      arenaBytes,
      prelude: K.PRELUDE,
      splitsFn: K.SPLITS_FN,
      kernels: this.reg.sources.join('\n'),
      stateInfo: rows.info.join('\n'),
      stateWhere: rows.where.join('\n'),
      stateKeys: rows.keys.join('\n'),
      fields,
      carve: carve.map((c) => '  ' + c).join('\n'),
      runningVarInit: rvInit.join('\n'),
      outVal,
      outValEval,
      forwardTrain: fwdTrain.join('\n'),
      forwardStep: fwdStep.join('\n'),
      forwardEval: fwdEval.join('\n'),
      backward: bwd.join('\n'),
      stepInput: step('gather ? m->data : m->x', 'm->x'),
      stepLabels: step('gather ? m->labels : m->y', 'm->y'),
      stepRows: step('gather ? m->order : nullptr', 'nullptr'),
      augmentLaunch,
      inC: this.g.inputShape[0],
      maxCropPadding: MAX_CROP_PADDING,
      gatherStep: step(
        '  // the convs reading the input and the loss read dataset rows through the order: no gather',
        `  if (gather)\n${gather}`,
      ),
      headInput: x.lossLaunch.includes('tk_input')
        ? '    const float* tk_input = m->x;  // the head reads the input (flatten → linear)\n'
        : '',
      lossLaunch: x.lossLaunch,
      sgdLaunch: this.launch(x.sgd, `dim3(${x.sgdBlocks})`, x.sgdArgs),
      ...this.tapView(),
      inputGradient: x.evalGrad !== null,
      counterCount: Math.max(1, this.nTotal),
      evalLossLaunch: x.evalGrad?.loss ?? '',
      evalBackward: x.evalGrad?.backward.join('\n') ?? '',
      trainGradBuf: this.inputGradBuf ?? 'nullptr',
      evalGradBuf: x.evalGrad?.grad ?? 'nullptr',
      inputGradBody: this.inputGradBuf
        ? `  if (batch != m->last_batch || batch < 1) return fail(TK_EINVAL, "input_grad: the last train step had batch %d, not %d", m->last_batch, batch);\n  return copy_out(m, dst, ${this.inputGradBuf}, sizeof(float) * (size_t)batch * kInputNumel);`
        : `  (void)batch;\n  return fail(TK_EINVAL, "input_grad: this package was built without input gradients (build it with inputGrad)");`,
    });
  }

  /** The taps' info rows and where each lives in either mode (the model input: m->x, the copy every call makes). */
  private tapView() {
    const at = (v: number, train: boolean) => this.val(v, train).replace(/^tk_input$/, 'm->x');
    return {
      numTaps: this.taps.length,
      tapInfo: this.taps
        .map(
          (t) =>
            `  {"${t.name.replace(/[^A-Za-z0-9_.#-]/g, '_')}", ${t.node}, ${t.shape.length}, {${[...t.shape, 0, 0, 0, 0].slice(0, 4).join(', ')}}, ${numel(t.shape)}},`,
        )
        .join('\n'),
      tapCases: this.taps.map((t, i) => `    case ${i}: return train ? ${at(t.node, true)} : ${at(t.node, false)};`).join('\n'),
    };
  }

  private cmake(): string {
    return render('cuda/CMakeLists.txt.hbs', { N: this.name, model: this.g.name });
  }
}
