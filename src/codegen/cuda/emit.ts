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
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { numel, type BatchNormNode, type Graph, type Node, type PoolNode } from '../../graph/ir.js';
import { isPlainConv } from '../../ops/conv2d.js';
import { opOf } from '../../ops/index.js';
import { emitDts } from '../dts.js';
import { baseView, CODEGEN_VERSION } from '../cpu/emit.js';
import {
  consumers,
  fuse,
  fusableAct,
  GradFlow,
  monotoneAct,
  needsGrad,
  type Contribution,
  type FusionPolicy,
  type Group,
} from '../middle.js';
import { render } from '../templates.js';
import type { CudaCtx } from './ctx.js';
import * as K from './kernels.js';

export interface CudaOptions {
  /** C identifier: files <name>_cuda.{h,cu}, functions <name>_cuda_* */
  name: string;
  /** largest batch one call accepts; buffers are sized for it */
  maxBatch: number;
  /** train steps also compute d loss / d input */
  inputGrad?: boolean;
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
  private readonly flow = new GradFlow((v) => this.gbuf(v));
  private readonly wantInputGrad: boolean;
  /** device buffer of d loss / d input after a step (packages built with inputGrad) */
  private inputGradBuf: string | undefined;

  constructor(g: Graph, o: CudaOptions) {
    this.g = g;
    this.graph = g;
    this.name = o.name;
    this.maxB = o.maxBatch;
    this.refB = Math.min(o.maxBatch, 64);
    this.groups = fuse(g, cudaPolicy);
    this.cons = consumers(g);
    this.directInput = this.cons[0].length > 0 && this.cons[0].every((c) => c.op === 'conv2d' && isPlainConv(c)) && g.output !== 0;
    const last = this.groups[this.groups.length - 1];
    const h = last.head;
    if (h.op === 'linear' && !last.act && last.out === g.output && K.headFits(this.maxB, h.attrs.inF, h.attrs.outF)) this.head = last;
    this.needs = needsGrad(g, !!o.inputGrad);
    this.wantInputGrad = !!o.inputGrad;
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
  val(v: number, train: boolean): string {
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

  emit(): Map<string, string> {
    const fwdTrain = this.forward(true);
    const fwdStep = this.head ? this.forward(true, true) : fwdTrain;
    const fwdEval = this.forward(false);
    const bwd = this.backward();
    const inN = numel(this.g.inputShape);
    const outNode = this.g.nodes[this.g.output];
    const classes = outNode.shape[0];
    let lossLaunch: string;
    if (this.head && this.headBwd) {
      const h = this.head.head as Extract<Node, { op: 'linear' }>;
      const a = h.attrs;
      const hk = this.reg.get(K.headKernel(a.inF, a.outF, a.bias, this.maxB));
      const p = h.params;
      lossLaunch = this.launch(hk, 'dim3(1)', [
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
      lossLaunch = this.launch(this.reg.get(K.lossKernel(classes)), 'dim3(1)', [
        this.val(this.g.output, true),
        'tk_labels',
        'tk_rows',
        `m->g${this.g.output}`,
        'm->sc',
        'B',
      ]);
    }
    const gather = this.directInput ? '' : this.reg.get(K.gather(inN));
    const convs = [...this.convGrads.values()];
    for (const c of convs) this.alloc(c.name, c.useBlocks.length * c.stride * 4);
    const sgd = this.reg.get(K.sgdKernel(this.pTotal, convs));
    const sgdArgs = ['m->P', 'm->G', 'm->M', 'm->sc', 'm->sgdpart', 'B', 'm->counter', 'm->sms', ...convs.map((c) => c.buf)];
    const sgdBlocks = Math.max(1, Math.ceil(this.pTotal / (K.THREADS * K.SGD_ITEMS)));
    // fixed allocations
    this.alloc('x', this.maxB * inN * 4);
    this.alloc('y', this.maxB * 4, 'int');
    this.alloc('P', this.pTotal * 4);
    this.alloc('G', this.pTotal * 4);
    this.alloc('M', this.pTotal * 4);
    this.alloc('S', this.sTotal * 4);
    this.alloc('NBT', Math.max(1, this.nTotal) * 8, 'long long');
    this.alloc('sc', 128, 'TkScalars');
    this.alloc('counter', 16, 'unsigned');
    this.alloc('sgdpart', sgdBlocks * 8, 'double');
    this.alloc('bnpart', Math.max(2 * this.bnC * 64, this.bnPartDoubles) * 8, 'double');
    this.alloc('bnsums', 2 * this.bnC * 8, 'double');
    const files = new Map<string, string>();
    files.set(`${this.name}_cuda.h`, this.header());
    files.set(
      `${this.name}_cuda.cu`,
      this.source(fwdTrain, fwdStep, fwdEval, bwd, { lossLaunch, gather, sgd, sgdArgs, sgdBlocks, inN, classes }),
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
    const U = P.toUpperCase();
    const K = this.g.nodes[this.g.output].shape[0];
    return `/* ${P}.h — C API of the CUDA package generated by tensorkiln for ${this.g.name}.
 *
 * The names and signatures follow the CPU packages' C API (src/codegen/README.md),
 * with "_cuda" in the prefix; every pointer argument is a HOST array (device memory
 * stays inside). Functions returning int return TK_OK or an error code, and
 * ${P}_last_error(m) describes the failure (with m == NULL: the calling thread's
 * last message, e.g. after a failed create). A missing GPU or driver is the error
 * TK_ENODEV, never an abort. One handle must not be used by two threads at once.
 *
 * Data: x [batch, ${this.g.inputShape.join(', ')}] float32 NCHW, logits [batch, ${K}], labels int32 in 0..${K - 1};
 * 1 <= batch <= ${P}_max_batch() = ${this.maxB}.
 *
 * Resident training: the dataset lives on the device (${P}_set_dataset, or the x/labels
 * given to train_epoch, uploaded again only when they change), with parameters,
 * gradients and momentum buffers; train_epoch runs all steps of an epoch with one
 * host synchronisation, each step replayed from a CUDA graph captured once per batch size.
 */
#ifndef ${U}_H
#define ${U}_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#ifndef TK_COMMON_TYPES
#define TK_COMMON_TYPES
enum { TK_OK = 0, TK_EINVAL = 1, TK_ENOMEM = 2 };
enum { TK_PARAM = 0, TK_BUFFER = 1 };
enum { TK_F32 = 0, TK_I64 = 1 };

enum { TK_LOSS_CROSS_ENTROPY = 0, TK_LOSS_NLL = 1 };

/**
 * SGD step options (torch.optim.SGD, dampening 0, no Nesterov), loss penalties
 * l1*sum|p| + l2*sum p^2, and the loss: cross-entropy of the output as logits
 * (with label smoothing, as nn.CrossEntropyLoss) or NLL of the output as
 * log-probabilities (nn.NLLLoss). Zero-initialised fields give plain cross-entropy.
 */
typedef struct tk_sgd_options {
  float lr;
  float momentum;
  float weight_decay;
  float l1;
  float l2;
  int loss_kind;
  float label_smoothing;
} tk_sgd_options;

/** What a training step reports. */
typedef struct tk_step_result {
  float loss;    /* mean cross-entropy + penalties (pre-step weights) */
  float loss_ce; /* mean cross-entropy alone */
  int correct;   /* samples whose argmax logit is the label */
} tk_step_result;

/** One state_dict entry under its canonical (first) PyTorch name. */
typedef struct tk_state_info {
  const char* name;
  int kind;  /* TK_PARAM | TK_BUFFER */
  int dtype; /* TK_F32 | TK_I64 */
  int ndim;
  int shape[4];
  size_t numel;
} tk_state_info;
#endif

#ifndef TK_CUDA_CODES
#define TK_CUDA_CODES
/** CUDA packages only: no usable CUDA device or driver; a CUDA call failed (message names it). */
enum { TK_ENODEV = 3, TK_ECUDA = 4 };
#endif

/** Floats per input sample and logits per sample. */
#define ${U}_INPUT_NUMEL ${numel(this.g.inputShape)}
#define ${U}_CLASSES ${K}

typedef struct ${P} ${P};

/** Creates a model on CUDA device \`device\` (parameters zero, BatchNorm running_var 1); *out is NULL on error. */
int ${P}_create(${P}** out, int device);
void ${P}_destroy(${P}* m);
const char* ${P}_last_error(const ${P}* m);
int ${P}_max_batch(const ${P}* m);
/** Name of the GPU, e.g. "NVIDIA H100 80GB HBM3". */
const char* ${P}_device_name(const ${P}* m);

/** Train (1) or eval (0) mode for forward, as PyTorch's module.train()/eval(). */
void ${P}_set_training(${P}* m, int training);
int ${P}_training(const ${P}* m);

/** Forward pass in the current mode (train: batch statistics, running-stat updates, dropout with \`seed\`). */
int ${P}_forward(${P}* m, const float* x, int batch, float* logits, uint32_t seed);

/** One training step: forward (train), mean cross-entropy + penalties, backward, SGD. result and logits may be NULL. */
int ${P}_train_step(${P}* m, const float* x, const int32_t* labels, int batch, const tk_sgd_options* opts,
                    uint32_t seed, tk_step_result* result, float* logits);

/** Uploads a dataset (n samples) to the device, for train_epoch with x == NULL and eval_dataset. */
int ${P}_set_dataset(${P}* m, const float* x, const int32_t* labels, int n);

/**
 * A whole epoch in one call, as the CPU packages: visits order[0..n_order) (each < n) in
 * slices of batch_size (the last may be smaller); step s uses the dropout seed
 * ${P}_step_seed(base_seed, first_step + s). Adds each step's loss to *loss_sum and the
 * correct predictions to *correct. x and labels (n samples) are uploaded when they differ
 * from the resident dataset (same pointers, n and sampled contents are taken as unchanged);
 * x == NULL uses the resident dataset. One host synchronisation, at the end.
 */
int ${P}_train_epoch(${P}* m, const float* x, const int32_t* labels, int n, const uint32_t* order, int n_order,
                    int batch_size, const tk_sgd_options* opts, uint32_t base_seed, uint64_t first_step,
                    double* loss_sum, int64_t* correct);
/** CUDA graphs for train_epoch steps: on (1, the default) or off (0). */
void ${P}_set_graphs(${P}* m, int on);
/** Eval-mode predictions of resident dataset rows [start, start + n): *correct = argmax matches. */
int ${P}_eval_dataset(${P}* m, int start, int n, int64_t* correct);

/** The dropout seed of training step \`step\` (the runtime's rule, src/train/rules.ts stepSeed). */
uint32_t ${P}_step_seed(uint32_t base_seed, uint64_t step);

/** State in Graph.state order (PyTorch state_dict order, shared ones once). */
int ${P}_num_state(void);
const tk_state_info* ${P}_state_info(int i);
/** Index of a state_dict key (every alias of a shared module too), or -1. */
int ${P}_state_index(const char* key);
/** Copies state i out / in (numel elements of its dtype). */
int ${P}_get_state(${P}* m, int i, void* dst);
int ${P}_set_state(${P}* m, int i, const void* src);
/** Gradient of parameter i from the last train step (penalties included, weight decay not). */
int ${P}_get_grad(${P}* m, int i, float* dst);
/** d loss / d x [batch, ...input] of the last train_step (batch must be its batch); TK_EINVAL unless built with input gradients. */
int ${P}_input_grad(${P}* m, float* dst, int batch);
/** SGD momentum buffer of parameter i; meaningful when has_momentum is 1. */
int ${P}_get_momentum(${P}* m, int i, float* dst);
int ${P}_set_momentum(${P}* m, int i, const float* src);
/** Whether the momentum buffers exist (PyTorch creates them at the first step with momentum != 0). */
int ${P}_has_momentum(${P}* m);
int ${P}_set_has_momentum(${P}* m, int has);
/** Forgets the SGD momentum buffers (the next step starts them again). */
int ${P}_reset_optimizer(${P}* m);
/** Waits for queued device work; reports asynchronous kernel failures. */
int ${P}_synchronize(${P}* m);
/**
 * Diagnostics: runs \`steps\` uncaptured training steps of \`batch\` rows of the resident dataset
 * with lr 0 (parameters and momentum buffers stay; BatchNorm running statistics move) and CUDA events around every
 * launch; writes "step_ms <ms>" then "<kernel> <launches per step> <ms per step>" lines,
 * slowest first, into out.
 */
int ${P}_profile(${P}* m, int steps, int batch, char* out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
`;
  }

  private source(
    fwdTrain: string[],
    fwdStep: string[],
    fwdEval: string[],
    bwd: string[],
    x: { lossLaunch: string; gather: string; sgd: string; sgdArgs: string[]; sgdBlocks: number; inN: number; classes: number },
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
    return `// ${P}.cu — generated by tensorkiln from ${this.g.name}; do not edit.
// ${this.reg.count} kernels for ${this.g.nodes.length} graph nodes (fused, deduplicated by signature); max batch ${this.maxB}.
#include "${P}.h"
#ifdef TK_CUDA_EMU
#include "tk_cuda_emu.h"
#else
#include <cuda_runtime.h>
#define TK_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace {

${K.PRELUDE}
${K.SPLITS_FN}
// ---- kernels

${this.reg.sources.join('\n')}
// ---- host side

constexpr int kMaxBatch = ${this.maxB};
constexpr int kInputNumel = ${x.inN};
constexpr int kClasses = ${x.classes};
constexpr size_t kParams = ${this.pTotal};
constexpr size_t kBuffers = ${this.sTotal};
constexpr size_t kArenaBytes = ${arenaBytes};
constexpr int kGraphSteps = 8;  // training steps per CUDA graph launch in train_epoch

const tk_state_info kState[] = {
${rows.info.join('\n')}
};
constexpr int kStateCount = (int)(sizeof(kState) / sizeof(kState[0]));
enum { TK_WHERE_PARAM, TK_WHERE_BUFFER, TK_WHERE_COUNTER };
struct Where { int kind; size_t offset; };
const Where kWhere[] = {
${rows.where.join('\n')}
};
struct Key { const char* key; int index; };
const Key kKeys[] = {
${rows.keys.join('\n')}
};

thread_local std::string g_error;

int fail(int code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_error = std::string("${P}: ") + buf;
  return code;
}

int cuda_fail(cudaError_t e, const char* what) {
  return fail(e == cudaErrorMemoryAllocation ? (int)TK_ENOMEM : (int)TK_ECUDA, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define TK_TRY(call) do { cudaError_t tk_e = (call); if (tk_e != cudaSuccess) return cuda_fail(tk_e, #call); } while (0)

inline unsigned tk_cdiv(long long a, long long b) { return (unsigned)((a + b - 1) / b); }

inline uint32_t host_mix32(uint32_t h) {
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}

struct ProfRec {
  const char* name;
  cudaEvent_t a, b;
};

}  // namespace

struct ${P} {
  int device = 0;
  int last_batch = 0;  // batch of the last train_step (its input gradient)
  int sms = 1;
  int training = 1;
  int graphs_on = 1;
  cudaDeviceProp prop;
  cudaStream_t stream = nullptr;
  unsigned char* arena = nullptr;
  float* data = nullptr;
  int* labels = nullptr;
  unsigned* order = nullptr;
  int n_data = 0;
  int n_order_cap = 0;
  const float* data_src = nullptr;      // host arrays the resident dataset came from (train_epoch)
  const int32_t* labels_src = nullptr;
  uint64_t data_print = 0;
  cudaGraphExec_t graphs[kMaxBatch + 1] = {};   // one step of batch B
  cudaGraphExec_t graphsN[kMaxBatch + 1] = {};  // kGraphSteps steps of batch B
  TkScalars host_sc;
  int prof_on = 0;                  // per-launch CUDA events (profile(); never while capturing)
  std::vector<ProfRec> prof;
${fields}
};

namespace {

void tk_prof_begin(${P}* m, const char* name) {
  ProfRec r{name, nullptr, nullptr};
  if (cudaEventCreate(&r.a) != cudaSuccess || cudaEventCreate(&r.b) != cudaSuccess) return;
  cudaEventRecord(r.a, m->stream);
  m->prof.push_back(r);
}

void tk_prof_end(${P}* m) {
  if (!m->prof.empty()) cudaEventRecord(m->prof.back().b, m->stream);
}

#define TK_RUN(kernel, grid, block, stream, ...) \
  do { \
    if (m->prof_on) tk_prof_begin(m, #kernel); \
    TK_LAUNCH(kernel, grid, block, stream, __VA_ARGS__); \
    if (m->prof_on) tk_prof_end(m); \
  } while (0)

inline int tk_bn_splits(${P}* m, int n, int C) {
  int s = (2 * m->sms + C - 1) / C;
  const int most = (n + 1023) / 1024;
  if (s > most) s = most;
  if (s > 64) s = 64;
  return s < 1 ? 1 : s;
}

int enqueue_forward_train(${P}* m, int B) {
  const float* tk_input = m->x;
  const unsigned* tk_rows = nullptr;
  (void)tk_input; (void)tk_rows;
${fwdTrain.join('\n')}
  return 0;
}

/** The training step's forward (the head, if fused, runs in the loss kernel). */
int enqueue_forward_step(${P}* m, int B, bool gather) {
  const float* tk_input = ${this.directInput ? 'gather ? m->data : m->x' : 'm->x'};
  const unsigned* tk_rows = ${this.directInput ? 'gather ? m->order : nullptr' : 'nullptr'};
  (void)tk_input; (void)tk_rows; (void)gather;
${fwdStep.join('\n')}
  return 0;
}

int enqueue_forward_eval(${P}* m, int B) {
  const float* tk_input = m->x;
  const unsigned* tk_rows = nullptr;
  (void)tk_input; (void)tk_rows;
${fwdEval.join('\n')}
  return 0;
}

int enqueue_backward(${P}* m, int B, bool gather) {
  const float* tk_input = ${this.directInput ? 'gather ? m->data : m->x' : 'm->x'};
  const unsigned* tk_rows = ${this.directInput ? 'gather ? m->order : nullptr' : 'nullptr'};
  (void)tk_input; (void)tk_rows; (void)gather;
${bwd.join('\n')}
  return 0;
}

/** One training step on the batch in m->x / m->y (gathered from the dataset first when \`gather\`). */
int enqueue_step(${P}* m, int B, bool gather) {
${
  this.directInput
    ? '  // the convs reading the input and the loss read dataset rows through the order: no gather'
    : `  if (gather)\n${this.launch(x.gather, `dim3(tk_cdiv(B * ${x.inN % 4 === 0 ? x.inN / 4 : x.inN}, ${K.THREADS}))`, ['m->data', 'm->labels', 'm->order', 'm->sc', 'm->x', 'm->y', 'B'])}`
}
  if (int r = enqueue_forward_step(m, B, gather)) return r;
  {
${x.lossLaunch.includes('tk_input') ? '    const float* tk_input = m->x;  // the head reads the input (flatten → linear)\n' : ''}    const int* tk_labels = ${this.directInput ? 'gather ? m->labels : m->y' : 'm->y'};
    const unsigned* tk_rows = ${this.directInput ? 'gather ? m->order : nullptr' : 'nullptr'};
    (void)tk_rows;
${x.lossLaunch}
  }
  if (int r = enqueue_backward(m, B, gather)) return r;
${this.launch(x.sgd, `dim3(${x.sgdBlocks})`, x.sgdArgs)}
  return 0;
}

int check_launches(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(e, what);
  return 0;
}

/** Resets the per-call accumulators, sets the dropout seed rule and the hyper-parameters (momentum_started is kept). */
int set_scalars(${P}* m, const tk_sgd_options* o, uint32_t seed, int use_step_seed, uint64_t first_step) {
  TkScalars& s = m->host_sc;
  s.loss_sum = 0; s.loss_ce = 0; s.loss_total = 0; s.correct = 0; s.cursor = 0; s.step = 0;
  s.seed_base = seed; s.use_step_seed = use_step_seed; s.first_step = first_step;
  TK_TRY(cudaMemcpyAsync(m->sc, &s, offsetof(TkScalars, momentum_started), cudaMemcpyHostToDevice, m->stream));
  if (o) {
    s.lr = o->lr; s.momentum = o->momentum; s.weight_decay = o->weight_decay; s.l1 = o->l1; s.l2 = o->l2;
    s.label_smoothing = o->label_smoothing; s.nll = o->loss_kind == TK_LOSS_NLL;
    TK_TRY(cudaMemcpyAsync(&m->sc->lr, &s.lr, sizeof(TkScalars) - offsetof(TkScalars, lr), cudaMemcpyHostToDevice, m->stream));
  }
  return 0;
}

int read_scalars(${P}* m) {
  TK_TRY(cudaMemcpyAsync(&m->host_sc, m->sc, sizeof(TkScalars), cudaMemcpyDeviceToHost, m->stream));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return 0;
}

int check_batch(int batch) {
  if (batch < 1 || batch > kMaxBatch) return fail(TK_EINVAL, "batch size %d is outside 1..%d (the max batch this package was generated for)", batch, kMaxBatch);
  return 0;
}

int check_options(const tk_sgd_options* o) {
  if (!o) return fail(TK_EINVAL, "SGD options are NULL");
  const float v[5] = {o->lr, o->momentum, o->weight_decay, o->l1, o->l2};
  const char* names[5] = {"lr", "momentum", "weight_decay", "l1", "l2"};
  for (int i = 0; i < 5; i++)
    if (!(v[i] == v[i]) || v[i] - v[i] != 0.f) return fail(TK_EINVAL, "SGD option %s is not a finite number", names[i]);
  if (o->loss_kind != TK_LOSS_CROSS_ENTROPY && o->loss_kind != TK_LOSS_NLL) return fail(TK_EINVAL, "loss_kind must be 0 (cross-entropy) or 1 (NLL), got %d", o->loss_kind);
  if (!(o->label_smoothing >= 0.f && o->label_smoothing <= 1.f)) return fail(TK_EINVAL, "label_smoothing must be in [0, 1]");
  return 0;
}

int check_labels(const int32_t* labels, int n) {
  for (int i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= kClasses) return fail(TK_EINVAL, "label %d is %d; expected a class index in 0..%d", i, (int)labels[i], kClasses - 1);
  return 0;
}

int check_index(int i, bool param) {
  if (i < 0 || i >= kStateCount) return fail(TK_EINVAL, "state index %d is outside 0..%d", i, kStateCount - 1);
  if (param && kState[i].kind != TK_PARAM) return fail(TK_EINVAL, "state %d ('%s') is not a parameter", i, kState[i].name);
  return 0;
}

void free_graphs(${P}* m) {
  for (int b = 0; b <= kMaxBatch; b++) {
    if (m->graphs[b]) { cudaGraphExecDestroy(m->graphs[b]); m->graphs[b] = nullptr; }
    if (m->graphsN[b]) { cudaGraphExecDestroy(m->graphsN[b]); m->graphsN[b] = nullptr; }
  }
}

/** The CUDA graph of \`steps\` consecutive training steps of batch B (1 or kGraphSteps), captured once. */
int step_graph(${P}* m, int B, int steps, cudaGraphExec_t* out) {
  cudaGraphExec_t* slot = steps == 1 ? &m->graphs[B] : &m->graphsN[B];
  if (*slot) { *out = *slot; return 0; }
  TK_TRY(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
  int r = 0;
  for (int k = 0; k < steps && !r; k++) r = enqueue_step(m, B, true);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(m->stream, &graph);
  if (r) { if (graph) cudaGraphDestroy(graph); return r; }
  if (e != cudaSuccess) return cuda_fail(e, "cudaStreamEndCapture (training steps)");
  e = cudaGraphInstantiate(slot, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) { *slot = nullptr; return cuda_fail(e, "cudaGraphInstantiate (training steps)"); }
  *out = *slot;
  return 0;
}

/** A cheap fingerprint of a host dataset: n and 4096 sampled values of x and labels. */
uint64_t fingerprint(const float* x, const int32_t* labels, int n) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)n;
  const size_t total = (size_t)n * kInputNumel;
  for (int k = 0; k < 4096; k++) {
    const size_t i = (size_t)((double)k / 4096 * total);
    uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    h = (h ^ bits) * 1099511628211ull;
    h = (h ^ (uint32_t)labels[(size_t)((double)k / 4096 * n)]) * 1099511628211ull;
  }
  return h;
}

// Host copies go on the model's stream and wait for it: the stream is non-blocking, so a
// plain cudaMemcpy (legacy default stream, which may return before a pageable upload lands)
// would not be ordered before the next kernel.
int copy_sync(${P}* m, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(dst, src, bytes, kind, m->stream));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return 0;
}

int copy_out(${P}* m, void* dst, const void* src, size_t bytes) { return copy_sync(m, dst, src, bytes, cudaMemcpyDeviceToHost); }
int copy_in(${P}* m, void* dst, const void* src, size_t bytes) { return copy_sync(m, dst, src, bytes, cudaMemcpyHostToDevice); }

int upload_dataset(${P}* m, const float* x, const int32_t* labels, int n) {
  if (!x || !labels || n < 1) return fail(TK_EINVAL, "dataset: NULL array or n < 1");
  if (int r = check_labels(labels, n)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  m->data_src = nullptr;
  if (n != m->n_data) {  // same size: same buffers, and the captured graphs stay valid
    free_graphs(m);      // graphs hold the old dataset's addresses
    if (m->data) { cudaFree(m->data); m->data = nullptr; }
    if (m->labels) { cudaFree(m->labels); m->labels = nullptr; }
    if (m->order) { cudaFree(m->order); m->order = nullptr; }
    m->n_data = 0;
    m->n_order_cap = 0;
    TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->data), sizeof(float) * (size_t)n * kInputNumel));
    TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->labels), sizeof(int32_t) * (size_t)n));
  }
  if (int r = copy_in(m, m->data, x, sizeof(float) * (size_t)n * kInputNumel)) return r;
  if (int r = copy_in(m, m->labels, labels, sizeof(int32_t) * (size_t)n)) return r;
  m->n_data = n;
  m->data_src = x;
  m->labels_src = labels;
  m->data_print = fingerprint(x, labels, n);
  return 0;
}

int ensure_order(${P}* m, int n_order) {
  if (n_order <= m->n_order_cap) return 0;
  TK_TRY(cudaStreamSynchronize(m->stream));
  free_graphs(m);
  if (m->order) { cudaFree(m->order); m->order = nullptr; }
  m->n_order_cap = 0;
  TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->order), sizeof(uint32_t) * (size_t)n_order));
  m->n_order_cap = n_order;
  return 0;
}


}  // namespace

extern "C" {

const char* ${P}_last_error(const ${P}*) { return g_error.c_str(); }
int ${P}_max_batch(const ${P}*) { return kMaxBatch; }
const char* ${P}_device_name(const ${P}* m) { return m ? m->prop.name : ""; }
void ${P}_set_training(${P}* m, int training) { if (m) m->training = training != 0; }
int ${P}_training(const ${P}* m) { return m ? m->training : 0; }
void ${P}_set_graphs(${P}* m, int on) { if (m) m->graphs_on = on != 0; }

uint32_t ${P}_step_seed(uint32_t base, uint64_t step) {
  return host_mix32(base ^ host_mix32((uint32_t)step ^ host_mix32((uint32_t)(step >> 32) + 0x9e3779b9u)));
}

int ${P}_create(${P}** out, int device) {
  if (!out) return fail(TK_EINVAL, "create: out is NULL");
  *out = nullptr;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    return fail(TK_ENODEV, "no CUDA device available (cudaGetDeviceCount: %s); this package needs an NVIDIA GPU and driver",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
  if (device < 0 || device >= count) return fail(TK_EINVAL, "device %d does not exist (%d CUDA device(s))", device, count);
  ${P}* m = new (std::nothrow) ${P}();
  if (!m) return fail(TK_ENOMEM, "out of host memory");
  m->device = device;
  std::memset(&m->host_sc, 0, sizeof m->host_sc);
  int r = 0;
  do {
    if ((e = cudaSetDevice(device)) != cudaSuccess) { r = cuda_fail(e, "cudaSetDevice"); break; }
    if ((e = cudaGetDeviceProperties(&m->prop, device)) != cudaSuccess) { r = cuda_fail(e, "cudaGetDeviceProperties"); break; }
    m->sms = m->prop.multiProcessorCount > 0 ? m->prop.multiProcessorCount : 1;
    if ((e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking)) != cudaSuccess) { r = cuda_fail(e, "cudaStreamCreate"); break; }
    if ((e = cudaMalloc(reinterpret_cast<void**>(&m->arena), kArenaBytes)) != cudaSuccess) { r = cuda_fail(e, "cudaMalloc (model arena)"); break; }
${carve.map((c) => '  ' + c).join('\n')}
    if ((e = cudaMemset(m->arena, 0, kArenaBytes)) != cudaSuccess) { r = cuda_fail(e, "cudaMemset"); break; }
    if (kBuffers) {
      std::vector<float> ones(kBuffers, 0.f);
${rvInit.join('\n')}
      if ((e = cudaMemcpy(m->S, ones.data(), kBuffers * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess) { r = cuda_fail(e, "cudaMemcpy"); break; }
    }
    if ((e = cudaDeviceSynchronize()) != cudaSuccess) { r = cuda_fail(e, "cudaDeviceSynchronize"); break; }
  } while (0);
  if (r) { ${P}_destroy(m); return r; }
  *out = m;
  return TK_OK;
}

void ${P}_destroy(${P}* m) {
  if (!m) return;
  cudaSetDevice(m->device);
  if (m->stream) cudaStreamSynchronize(m->stream);
  free_graphs(m);
  if (m->arena) cudaFree(m->arena);
  if (m->data) cudaFree(m->data);
  if (m->labels) cudaFree(m->labels);
  if (m->order) cudaFree(m->order);
  if (m->stream) cudaStreamDestroy(m->stream);
  delete m;
}

int ${P}_forward(${P}* m, const float* x, int batch, float* logits, uint32_t seed) {
  if (!m || !x || !logits) return fail(TK_EINVAL, "forward: NULL argument");
  if (int r = check_batch(batch)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(m->x, x, sizeof(float) * (size_t)batch * kInputNumel, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, nullptr, seed, 0, 0)) return r;
  const int B = batch;
  if (int r = m->training ? enqueue_forward_train(m, B) : enqueue_forward_eval(m, B)) return r;
  if (int r = check_launches("forward kernels")) return r;
  TK_TRY(cudaMemcpyAsync(logits, m->training ? ${outVal} : ${outValEval}, sizeof(float) * (size_t)B * kClasses, cudaMemcpyDeviceToHost, m->stream));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return TK_OK;
}

int ${P}_train_step(${P}* m, const float* x, const int32_t* labels, int batch, const tk_sgd_options* opts, uint32_t seed, tk_step_result* result, float* logits) {
  if (!m || !x || !labels) return fail(TK_EINVAL, "train_step: NULL argument");
  if (int r = check_batch(batch)) return r;
  if (int r = check_options(opts)) return r;
  if (int r = check_labels(labels, batch)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(m->x, x, sizeof(float) * (size_t)batch * kInputNumel, cudaMemcpyHostToDevice, m->stream));
  TK_TRY(cudaMemcpyAsync(m->y, labels, sizeof(int32_t) * (size_t)batch, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, opts, seed, 0, 0)) return r;
  if (int r = enqueue_step(m, batch, false)) return r;
  if (int r = check_launches("training step kernels")) return r;
  m->last_batch = batch;
  if (logits) TK_TRY(cudaMemcpyAsync(logits, ${outVal}, sizeof(float) * (size_t)batch * kClasses, cudaMemcpyDeviceToHost, m->stream));
  if (int r = read_scalars(m)) return r;
  if (result) {
    result->loss = (float)m->host_sc.loss_total;
    result->loss_ce = (float)m->host_sc.loss_ce;
    result->correct = (int)m->host_sc.correct;
  }
  return TK_OK;
}

int ${P}_set_dataset(${P}* m, const float* x, const int32_t* labels, int n) {
  if (!m) return fail(TK_EINVAL, "set_dataset: NULL model");
  if (int r = upload_dataset(m, x, labels, n)) return r;
  return TK_OK;
}

int ${P}_train_epoch(${P}* m, const float* x, const int32_t* labels, int n, const uint32_t* order, int n_order,
                    int batch_size, const tk_sgd_options* opts, uint32_t base_seed, uint64_t first_step,
                    double* loss_sum, int64_t* correct) {
  if (!m || !order || !loss_sum || !correct) return fail(TK_EINVAL, "train_epoch: NULL argument");
  if (int r = check_batch(batch_size)) return r;
  if (int r = check_options(opts)) return r;
  if (x && (!labels || n < 1)) return fail(TK_EINVAL, "train_epoch: labels NULL or n < 1");
  if (!x && !m->n_data) return fail(TK_EINVAL, "train_epoch: x is NULL and no dataset was set (set_dataset)");
  // every argument is checked before the resident dataset may be replaced
  const int n_data = x ? n : m->n_data;
  if (n_order < 0) return fail(TK_EINVAL, "train_epoch: n_order = %d", n_order);
  for (int i = 0; i < n_order; i++)
    if (order[i] >= (uint32_t)n_data) return fail(TK_EINVAL, "train_epoch: order[%d] = %u is not a sample index (n = %d)", i, order[i], n_data);
  if (x && (x != m->data_src || labels != m->labels_src || n != m->n_data || fingerprint(x, labels, n) != m->data_print))
    if (int r = upload_dataset(m, x, labels, n)) return r;
  if (n_order == 0) return TK_OK;
  TK_TRY(cudaSetDevice(m->device));
  if (int r = ensure_order(m, n_order)) return r;
  TK_TRY(cudaMemcpyAsync(m->order, order, sizeof(uint32_t) * (size_t)n_order, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, opts, base_seed, 1, first_step)) return r;
  const int full = n_order / batch_size, rest = n_order % batch_size;
  for (int k = 0; k <= full;) {
    const int B = k < full ? batch_size : rest;
    if (B == 0) break;
    // full batches kGraphSteps at a time from one graph, then one by one, then the partial batch
    const int steps = (k < full && full - k >= kGraphSteps) ? kGraphSteps : 1;
    if (m->graphs_on) {
      cudaGraphExec_t g = nullptr;
      if (int r = step_graph(m, B, steps, &g)) return r;
      TK_TRY(cudaGraphLaunch(g, m->stream));
    } else {
      for (int j = 0; j < steps; j++)
        if (int r = enqueue_step(m, B, true)) return r;
    }
    k += steps;
  }
  if (int r = check_launches("training epoch kernels")) return r;
  if (int r = read_scalars(m)) return r;
  *loss_sum += m->host_sc.loss_sum;
  *correct += m->host_sc.correct;
  return TK_OK;
}

int ${P}_eval_dataset(${P}* m, int start, int n, int64_t* correct) {
  if (!m || !correct) return fail(TK_EINVAL, "eval_dataset: NULL argument");
  if (!m->n_data) return fail(TK_EINVAL, "eval_dataset: no dataset (set_dataset)");
  if (start < 0 || n < 0 || (long long)start + n > m->n_data) return fail(TK_EINVAL, "eval_dataset: rows [%d, %d) outside the dataset of %d", start, start + n, m->n_data);
  TK_TRY(cudaSetDevice(m->device));
  std::vector<float> logits((size_t)kMaxBatch * kClasses);
  std::vector<int32_t> labels(kMaxBatch);
  int64_t hits = 0;
  for (int s = start; s < start + n; s += kMaxBatch) {
    const int B = (start + n - s) < kMaxBatch ? (start + n - s) : kMaxBatch;
    TK_TRY(cudaMemcpyAsync(m->x, m->data + (size_t)s * kInputNumel, sizeof(float) * (size_t)B * kInputNumel, cudaMemcpyDeviceToDevice, m->stream));
    if (int r = enqueue_forward_eval(m, B)) return r;
    if (int r = check_launches("eval kernels")) return r;
    TK_TRY(cudaMemcpyAsync(logits.data(), ${outValEval}, sizeof(float) * (size_t)B * kClasses, cudaMemcpyDeviceToHost, m->stream));
    TK_TRY(cudaMemcpyAsync(labels.data(), m->labels + s, sizeof(int32_t) * (size_t)B, cudaMemcpyDeviceToHost, m->stream));
    TK_TRY(cudaStreamSynchronize(m->stream));
    for (int b = 0; b < B; b++) {
      int arg = 0;
      for (int k = 1; k < kClasses; k++) if (logits[(size_t)b * kClasses + k] > logits[(size_t)b * kClasses + arg]) arg = k;
      if (arg == labels[b]) hits++;
    }
  }
  *correct = hits;
  return TK_OK;
}

int ${P}_num_state(void) { return kStateCount; }
const tk_state_info* ${P}_state_info(int i) { return i >= 0 && i < kStateCount ? &kState[i] : nullptr; }

int ${P}_state_index(const char* key) {
  if (!key) return -1;
  for (const Key& k : kKeys)
    if (std::strcmp(k.key, key) == 0) return k.index;
  for (int i = 0; i < kStateCount; i++)
    if (std::strcmp(kState[i].name, key) == 0) return i;
  return -1;
}

static void* state_ptr(${P}* m, int i) {
  const Where& w = kWhere[i];
  if (w.kind == TK_WHERE_PARAM) return m->P + w.offset;
  if (w.kind == TK_WHERE_BUFFER) return m->S + w.offset;
  return m->NBT + w.offset;
}

static size_t state_bytes(int i) { return kState[i].numel * (kState[i].dtype == TK_I64 ? 8 : 4); }

int ${P}_get_state(${P}* m, int i, void* dst) {
  if (!m || !dst) return fail(TK_EINVAL, "get_state: NULL argument");
  if (int r = check_index(i, false)) return r;
  return copy_out(m, dst, state_ptr(m, i), state_bytes(i));
}

int ${P}_set_state(${P}* m, int i, const void* src) {
  if (!m || !src) return fail(TK_EINVAL, "set_state: NULL argument");
  if (int r = check_index(i, false)) return r;
  return copy_in(m, state_ptr(m, i), src, state_bytes(i));
}

int ${P}_input_grad(${P}* m, float* dst, int batch) {
  if (!m || !dst) return fail(TK_EINVAL, "input_grad: NULL argument");
${
  this.inputGradBuf
    ? `  if (batch != m->last_batch || batch < 1) return fail(TK_EINVAL, "input_grad: the last train step had batch %d, not %d", m->last_batch, batch);
  return copy_out(m, dst, ${this.inputGradBuf}, sizeof(float) * (size_t)batch * kInputNumel);`
    : `  (void)batch;
  return fail(TK_EINVAL, "input_grad: this package was built without input gradients (build it with inputGrad)");`
}
}

int ${P}_get_grad(${P}* m, int i, float* dst) {
  if (!m || !dst) return fail(TK_EINVAL, "get_grad: NULL argument");
  if (int r = check_index(i, true)) return r;
  return copy_out(m, dst, m->G + kWhere[i].offset, state_bytes(i));
}

int ${P}_get_momentum(${P}* m, int i, float* dst) {
  if (!m || !dst) return fail(TK_EINVAL, "get_momentum: NULL argument");
  if (int r = check_index(i, true)) return r;
  return copy_out(m, dst, m->M + kWhere[i].offset, state_bytes(i));
}

int ${P}_set_momentum(${P}* m, int i, const float* src) {
  if (!m || !src) return fail(TK_EINVAL, "set_momentum: NULL argument");
  if (int r = check_index(i, true)) return r;
  return copy_in(m, m->M + kWhere[i].offset, src, state_bytes(i));
}

int ${P}_has_momentum(${P}* m) {
  if (!m) return 0;
  int v = 0;
  if (copy_out(m, &v, &m->sc->momentum_started, sizeof v)) return 0;
  return v;
}

int ${P}_set_has_momentum(${P}* m, int has) {
  if (!m) return fail(TK_EINVAL, "set_has_momentum: NULL model");
  const int v = has != 0;
  return copy_in(m, &m->sc->momentum_started, &v, sizeof v);
}

int ${P}_reset_optimizer(${P}* m) {
  if (!m) return fail(TK_EINVAL, "reset_optimizer: NULL model");
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemsetAsync(m->M, 0, kParams * sizeof(float), m->stream));
  return ${P}_set_has_momentum(m, 0);
}

int ${P}_profile(${P}* m, int steps, int batch, char* out, size_t cap) {
  if (!m || !out || cap == 0 || steps < 1) return fail(TK_EINVAL, "profile: NULL argument or steps < 1");
  if (int r = check_batch(batch)) return r;
  if (!m->n_data) return fail(TK_EINVAL, "profile: no dataset (set_dataset)");
  TK_TRY(cudaSetDevice(m->device));
  // the lr-0 steps would still rewrite the momentum buffers (momentum 0 stores the gradient)
  std::vector<float> momentum(kParams);
  if (int r = copy_out(m, momentum.data(), m->M, kParams * sizeof(float))) return r;
  const int total = steps * batch + batch;
  if (int r = ensure_order(m, total)) return r;
  std::vector<uint32_t> order(total);
  for (int i = 0; i < total; i++) order[i] = (uint32_t)(i % m->n_data);
  TK_TRY(cudaMemcpyAsync(m->order, order.data(), sizeof(uint32_t) * order.size(), cudaMemcpyHostToDevice, m->stream));
  const tk_sgd_options zero = {0.f, 0.f, 0.f, 0.f, 0.f, TK_LOSS_CROSS_ENTROPY, 0.f};  // lr 0: the parameters do not move (BatchNorm running stats do)
  if (int r = set_scalars(m, &zero, 0, 1, 0)) return r;
  if (int r = enqueue_step(m, batch, true)) return r;  // warm-up
  TK_TRY(cudaStreamSynchronize(m->stream));
  cudaEvent_t t0, t1;
  TK_TRY(cudaEventCreate(&t0));
  TK_TRY(cudaEventCreate(&t1));
  m->prof.clear();
  m->prof_on = 1;
  cudaEventRecord(t0, m->stream);
  int r = 0;
  for (int k = 0; k < steps && !r; k++) r = enqueue_step(m, batch, true);
  cudaEventRecord(t1, m->stream);
  m->prof_on = 0;
  cudaError_t e = cudaStreamSynchronize(m->stream);
  if (e == cudaSuccess && !r) r = copy_in(m, m->M, momentum.data(), kParams * sizeof(float));
  struct Row { std::string name; double ms; int calls; };
  std::vector<Row> rows;
  for (auto& p : m->prof) {
    float ms = 0;
    if (e == cudaSuccess) cudaEventElapsedTime(&ms, p.a, p.b);
    cudaEventDestroy(p.a);
    cudaEventDestroy(p.b);
    size_t j = 0;
    while (j < rows.size() && rows[j].name != p.name) j++;
    if (j == rows.size()) rows.push_back({p.name, 0.0, 0});
    rows[j].ms += ms;
    rows[j].calls++;
  }
  m->prof.clear();
  float wall = 0;
  if (e == cudaSuccess) cudaEventElapsedTime(&wall, t0, t1);
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  if (r) return r;
  if (e != cudaSuccess) return cuda_fail(e, "profile");
  for (size_t i = 0; i < rows.size(); i++)
    for (size_t j = i + 1; j < rows.size(); j++)
      if (rows[j].ms > rows[i].ms) std::swap(rows[i], rows[j]);
  size_t at = (size_t)std::snprintf(out, cap, "step_ms %.4f (uncaptured, events around each launch)\\n", wall / steps);
  for (auto& row : rows) {
    if (at >= cap) break;
    at += (size_t)std::snprintf(out + at, cap - at, "%s %d %.4f\\n", row.name.c_str(), row.calls / steps, row.ms / steps);
  }
  return TK_OK;
}

int ${P}_synchronize(${P}* m) {
  if (!m) return fail(TK_EINVAL, "synchronize: NULL model");
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return check_launches("queued kernels");
}

}  // extern "C"
`;
  }

  private cmake(): string {
    const N = this.name;
    return `# CUDA package generated by tensorkiln for ${this.g.name}.
#   cmake -S . -B build && cmake --build build           (GPU build: sm_80 and sm_90 code, plus PTX)
#   cmake -S . -B build -DTK_CUDA_EMU=ON                 (CPU emulation build, for tests without a GPU)
#   cmake-js compile [--CDTK_CUDA_EMU=ON]                (also the Node addon build/Release/${N}_cuda.node)
cmake_minimum_required(VERSION 3.18)
option(TK_CUDA_EMU "build the kernels for the CPU emulator (tk_cuda_emu.h) instead of a GPU" OFF)
if(TK_CUDA_EMU)
  project(${N}_cuda LANGUAGES CXX)
  set(CMAKE_CXX_STANDARD 17)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_library(${N}_cuda STATIC ${N}_cuda.cu)
  set_source_files_properties(${N}_cuda.cu PROPERTIES LANGUAGE CXX)
  target_compile_options(${N}_cuda PRIVATE -x c++ -O2 -U_FORTIFY_SOURCE)
  target_compile_definitions(${N}_cuda PUBLIC TK_CUDA_EMU)
  target_include_directories(${N}_cuda PUBLIC \${CMAKE_CURRENT_SOURCE_DIR})
else()
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # "80;90" = sm_80 and sm_90 machine code plus compute_80/compute_90 PTX for newer GPUs
    set(CMAKE_CUDA_ARCHITECTURES "80;90")
  endif()
  project(${N}_cuda LANGUAGES CXX CUDA)
  find_package(CUDAToolkit REQUIRED)
  set(CMAKE_CXX_STANDARD 17)
  set(CMAKE_CUDA_STANDARD 17)
  add_library(${N}_cuda STATIC ${N}_cuda.cu)
  set_target_properties(${N}_cuda PROPERTIES CUDA_RUNTIME_LIBRARY Static POSITION_INDEPENDENT_CODE ON)
  target_compile_options(${N}_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xptxas=-O3 -diag-suppress=177>)
  target_include_directories(${N}_cuda PUBLIC \${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${N}_cuda PUBLIC CUDA::cudart_static)
endif()

if(CMAKE_JS_VERSION)
  if(NOT TK_NAPI_DIR)
    execute_process(COMMAND node -p "require('node-addon-api').include_dir"
                    WORKING_DIRECTORY \${CMAKE_CURRENT_SOURCE_DIR}
                    OUTPUT_VARIABLE TK_NAPI_DIR OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  add_library(${N}_cuda_node SHARED binding.cpp \${CMAKE_JS_SRC})
  set_target_properties(${N}_cuda_node PROPERTIES PREFIX "" SUFFIX ".node" OUTPUT_NAME ${N}_cuda)
  target_include_directories(${N}_cuda_node PRIVATE \${CMAKE_JS_INC} \${TK_NAPI_DIR})
  target_compile_definitions(${N}_cuda_node PRIVATE NAPI_VERSION=8 NAPI_CPP_EXCEPTIONS)
  target_compile_options(${N}_cuda_node PRIVATE -O2 -fexceptions)
  target_link_libraries(${N}_cuda_node PRIVATE ${N}_cuda \${CMAKE_JS_LIB})
endif()
`;
  }
}
