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
import { numel, type Graph, type Node } from '../../graph/ir.js';
import * as K from './kernels.js';
import { consumers, epilogueOf, fuse, needsGrad, perSample, type Group } from './plan.js';

export interface CudaOptions {
  /** C identifier: files <name>_cuda.{h,cu}, functions <name>_cuda_* */
  name: string;
  /** largest batch one call accepts; buffers are sized for it */
  maxBatch: number;
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

type GradState = { buf: string; owned: boolean } | undefined;

export function emitCudaPackage(graph: Graph, opts: CudaOptions): Map<string, string> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.name)) throw new Error(`CUDA package name must be a C identifier, got '${opts.name}'`);
  if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1 || opts.maxBatch > 65535)
    throw new Error(`maxBatch must be an integer in 1..65535, got ${opts.maxBatch}`);
  return new Emitter(graph, opts).emit();
}

class Emitter {
  private readonly g: Graph;
  private readonly name: string;
  private readonly maxB: number;
  private readonly refB: number;
  private readonly reg = new Registry();
  private readonly allocs: Alloc[] = [];
  private readonly groups: Group[];
  private readonly need: boolean[];
  /** parameter and float-buffer offsets */
  private readonly pOff = new Map<string, number>();
  private readonly sOff = new Map<string, number>();
  private readonly nIdx = new Map<string, number>();
  private pTotal = 0;
  private sTotal = 0;
  private nTotal = 0;
  private wpartFloats = 0;
  private bnC = 1;

  constructor(g: Graph, o: CudaOptions) {
    this.g = g;
    this.name = o.name;
    this.maxB = o.maxBatch;
    this.refB = Math.min(o.maxBatch, 64);
    this.groups = fuse(g);
    this.need = needsGrad(g);
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
    for (const n of g.nodes) {
      if (n.op === 'input' || n.op === 'reshape') continue;
      if (!['conv2d', 'linear', 'maxpool2d', 'avgpool2d', 'batchnorm2d', 'dropout', 'relu', 'tanh', 'add'].includes(n.op))
        throw new Error(`the CUDA backend has no kernel for op '${(n as Node).op}' (node ${n.id}, ${n.source})`);
    }
    if (g.nodes[g.output].shape.length !== 1) throw new Error('the model output must be logits [B, classes]');
  }

  // ---------------------------------------------------------------- buffers

  private alloc(name: string, bytes: number, type = 'float'): string {
    if (!this.allocs.some((a) => a.name === name)) this.allocs.push({ name, bytes: Math.max(bytes, 4), type });
    return `m->${name}`;
  }

  private P(name: string): string {
    return `(m->P + ${this.pOff.get(name)!})`;
  }
  private G(name: string): string {
    return `(m->G + ${this.pOff.get(name)!})`;
  }
  private S(name: string): string {
    return `(m->S + ${this.sOff.get(name)!})`;
  }

  /** Device pointer holding value v's activations in the given mode (reshapes and eval dropouts are views). */
  private val(v: number, train: boolean): string {
    const n = this.g.nodes[v];
    if (n.op === 'input') return 'm->x';
    if (n.op === 'reshape') return this.val(n.inputs[0], train);
    if (n.op === 'dropout' && !train) return this.val(n.inputs[0], train);
    return this.alloc(`a${v}`, this.maxB * perSample(n) * 4);
  }

  // ---------------------------------------------------------------- forward

  private launch(k: string, grid: string, args: string[]): string {
    return `  TK_LAUNCH(${k}, ${grid}, dim3(${K.THREADS}), m->stream, ${args.join(', ')});`;
  }

  private convShape(n: Extract<Node, { op: 'conv2d' }>): K.ConvShape {
    const [C, H, W] = this.g.nodes[n.inputs[0]].shape;
    const a = n.attrs;
    return { C, H, W, O: a.outC, OH: n.shape[1], OW: n.shape[2], KH: a.kh, KW: a.kw, SH: a.sh, SW: a.sw, PH: a.ph, PW: a.pw, bias: a.bias };
  }

  private forward(train: boolean): string[] {
    const L: string[] = [];
    for (const grp of this.groups) {
      const n = grp.node;
      L.push(`  // ${n.module || n.op} (${n.source})`);
      if (grp.kind === 'conv') {
        const s = this.convShape(grp.node);
        const ep = epilogueOf(grp);
        const k = K.convFwd(s, ep, this.refB);
        const name = this.reg.get(k);
        const idx = train && grp.pool ? this.alloc(`i${grp.out}`, this.maxB * perSample(this.g.nodes[grp.out]), 'unsigned char') : 'nullptr';
        L.push(this.launch(name, `dim3(tk_cdiv(B * ${k.TY * k.TX}, ${K.THREADS}), ${s.O / k.OCT})`, [this.val(grp.input, train), this.P(n.params[0]), s.bias ? this.P(n.params[1]) : 'nullptr', this.val(grp.out, train), idx, 'B']));
      } else if (grp.kind === 'linear') {
        const a = grp.node.attrs;
        const name = this.reg.get(K.linearFwd(a.inF, a.outF, a.bias, grp.act));
        L.push(this.launch(name, `dim3(tk_cdiv(B * ${a.outF * 32}, ${K.THREADS}))`, [this.val(grp.input, train), this.P(n.params[0]), a.bias ? this.P(n.params[1]) : 'nullptr', this.val(grp.out, train), 'B']));
      } else if (grp.kind === 'bn') {
        const node = grp.node;
        const ep = epilogueOf(grp);
        const { C, eps, momentum } = node.attrs;
        const HW = ep.H * ep.W;
        this.bnC = Math.max(this.bnC, C);
        const [w, b, rm, rv, nbt] = node.params;
        const outN = perSample(this.g.nodes[grp.out]);
        if (train) {
          const mean = this.alloc(`bm${node.id}`, C * 4);
          const inv = this.alloc(`bi${node.id}`, C * 4);
          const stats = this.reg.get(K.bnStats(C, HW, eps, momentum));
          L.push(`  { const int S = tk_bn_splits(m, B * ${HW}, ${C});`);
          L.push(this.launch(stats, `dim3(${C}, S)`, [this.val(grp.input, true), 'm->bnpart', 'B', 'S', mean, inv, this.S(rm), this.S(rv), `(m->NBT + ${this.nIdx.get(nbt)!})`, 'm->counter']) + ' }');
          const idx = grp.pool ? this.alloc(`i${grp.out}`, this.maxB * outN, 'unsigned char') : 'nullptr';
          const apply = this.reg.get(K.bnApply(ep, eps, true));
          L.push(this.launch(apply, `dim3(tk_cdiv(B * ${outN}, ${K.THREADS}))`, [this.val(grp.input, true), mean, inv, this.P(w), this.P(b), this.val(grp.out, true), idx, 'B']));
        } else {
          const apply = this.reg.get(K.bnApply(ep, eps, false));
          L.push(this.launch(apply, `dim3(tk_cdiv(B * ${outN}, ${K.THREADS}))`, [this.val(grp.input, false), this.S(rm), this.S(rv), this.P(w), this.P(b), this.val(grp.out, false), 'nullptr', 'B']));
        }
      } else {
        L.push(...this.forwardSingle(grp.node, train));
      }
    }
    return L;
  }

  private poolShape(n: Extract<Node, { op: 'maxpool2d' | 'avgpool2d' }>): K.PoolShape {
    const [C, H, W] = this.g.nodes[n.inputs[0]].shape;
    const a = n.attrs;
    return { C, H, W, OH: n.shape[1], OW: n.shape[2], kh: a.kh, kw: a.kw, sh: a.sh, sw: a.sw, ph: a.ph, pw: a.pw };
  }

  private forwardSingle(n: Node, train: boolean): string[] {
    const N = perSample(n);
    const grid = `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`;
    switch (n.op) {
      case 'maxpool2d':
      case 'avgpool2d': {
        const op = n.op === 'maxpool2d' ? 'max' : 'avg';
        const k = this.reg.get(K.poolFwd(op, this.poolShape(n)));
        const idx = train && op === 'max' ? this.alloc(`j${n.id}`, this.maxB * N * 4, 'int') : 'nullptr';
        return [this.launch(k, grid, [this.val(n.inputs[0], train), this.val(n.id, train), idx, 'B'])];
      }
      case 'relu':
      case 'tanh':
        return [this.launch(this.reg.get(K.actFwd(n.op, N)), grid, [this.val(n.inputs[0], train), this.val(n.id, train), 'B'])];
      case 'add':
        return [this.launch(this.reg.get(K.addFwd(N)), grid, [this.val(n.inputs[0], train), this.val(n.inputs[1], train), this.val(n.id, train), 'B'])];
      case 'dropout': {
        if (!train) return ['  // dropout: identity in eval'];
        const k = this.reg.get(K.dropoutFwd(this.dropoutSpec(n)));
        return [this.launch(k, grid, [this.val(n.inputs[0], true), this.val(n.id, true), 'm->sc', 'B'])];
      }
      case 'reshape':
        return ['  // reshape: a view'];
      default:
        throw new Error(`internal: no single-op forward for ${n.op}`);
    }
  }

  private dropoutSpec(n: Extract<Node, { op: 'dropout' }>): K.DropoutSpec {
    return { n: perSample(n), C: n.attrs.channelwise ? n.shape[0] : 1, p: n.attrs.p, channelwise: n.attrs.channelwise, stream: n.attrs.stream };
  }

  // ---------------------------------------------------------------- backward

  private grads = new Map<number, GradState>();
  private written = new Set<string>();

  private gbuf(v: number): string {
    return this.alloc(`g${v}`, this.maxB * perSample(this.g.nodes[v]) * 4);
  }

  /** Where a computed gradient contribution to value v goes: {out, base}. */
  private contrib(v: number): { out: string; base: string } {
    const st = this.grads.get(v);
    const own = this.gbuf(v);
    this.grads.set(v, { buf: own, owned: true });
    if (!st) return { out: own, base: 'nullptr' };
    return { out: own, base: st.buf };
  }

  /** An identity contribution (add, reshape): alias when it is the first, else a sum kernel. */
  private contribIdentity(v: number, src: string, L: string[]): void {
    const st = this.grads.get(v);
    if (!st) {
      this.grads.set(v, { buf: src, owned: false });
      return;
    }
    const N = perSample(this.g.nodes[v]);
    const own = this.gbuf(v);
    L.push(this.launch(this.reg.get(K.accumulate(N)), `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [st.buf, src, own, 'B']));
    this.grads.set(v, { buf: own, owned: true });
  }

  /** 1 when this parameter's gradient was already written by a later use (shared modules), else 0. */
  private acc(param: string): string {
    if (this.written.has(param)) return '1';
    this.written.add(param);
    return '0';
  }

  private backward(): string[] {
    const L: string[] = [];
    const out = this.g.output;
    this.grads.set(out, { buf: this.gbuf(out), owned: true });
    for (let gi = this.groups.length - 1; gi >= 0; gi--) {
      const grp = this.groups[gi];
      const st = this.grads.get(grp.out);
      if (!st) continue;
      const gout = st.buf;
      const n = grp.node;
      L.push(`  // d ${n.module || n.op} (${n.source})`);
      if (grp.kind === 'conv') {
        const s = this.convShape(grp.node);
        const ep = epilogueOf(grp);
        let dz = gout;
        if (grp.act !== 'none' || grp.pool) {
          dz = this.alloc(`dz${n.id}`, this.maxB * perSample(n) * 4);
          const idx = grp.pool ? `m->i${grp.out}` : 'nullptr';
          L.push(this.launch(this.reg.get(K.convBwdPre(ep)), `dim3(tk_cdiv(B * ${perSample(n)}, ${K.THREADS}))`, [gout, this.val(grp.out, true), idx, dz, 'B']));
        }
        const { NCG } = K.wgradGroup(s);
        const kp = this.reg.get(K.convWgradPartial(s));
        const kr = this.reg.get(K.convWgradReduce(s));
        const KK = s.C * s.KH * s.KW + 1;
        this.wpartFloats = Math.max(this.wpartFloats, this.maxB * s.O * KK);
        const accW = this.acc(n.params[0]);
        if (s.bias && this.acc(n.params[1]) !== accW) throw new Error(`internal: ${n.params[1]} and ${n.params[0]} are shared differently`);
        L.push(`  { int SB, splits; tk_wgrad_splits(m, B, ${s.O * NCG}, &SB, &splits);`);
        L.push(this.launch(kp, `dim3(${s.O}, ${NCG}, splits)`, [dz, this.val(grp.input, true), 'm->wpart', 'B', 'SB']));
        L.push(this.launch(kr, `dim3(tk_cdiv(${s.O * KK}, ${K.THREADS}))`, ['m->wpart', 'splits', this.G(n.params[0]), s.bias ? this.G(n.params[1]) : 'nullptr', accW]) + ' }');
        if (this.need[grp.input]) {
          const k = K.convDgrad(s, this.refB);
          const { out: o, base } = this.contrib(grp.input);
          L.push(this.launch(this.reg.get(k), `dim3(tk_cdiv(B * ${s.H * k.TX}, ${K.THREADS}), ${s.C / k.ICT})`, [dz, this.P(n.params[0]), base, o, 'B']));
        }
      } else if (grp.kind === 'linear') {
        const a = grp.node.attrs;
        const k = this.reg.get(K.linearBwd(a.inF, a.outF, a.bias, grp.act));
        const accW = this.acc(n.params[0]);
        if (a.bias && this.acc(n.params[1]) !== accW) throw new Error(`internal: ${n.params[1]} and ${n.params[0]} are shared differently`);
        let dx = 'nullptr';
        let base = 'nullptr';
        let extra = '0';
        if (this.need[grp.input]) {
          ({ out: dx, base } = this.contrib(grp.input));
          extra = `B * ${a.inF}`;
        }
        L.push(this.launch(k, `dim3(tk_cdiv(${a.outF * a.inF + a.outF} + ${extra}, ${K.THREADS}))`, [gout, this.val(grp.out, true), this.val(grp.input, true), this.P(n.params[0]), this.G(n.params[0]), a.bias ? this.G(n.params[1]) : 'nullptr', accW, base, dx, 'B']));
      } else if (grp.kind === 'bn') {
        const node = grp.node;
        const ep = epilogueOf(grp);
        const { C } = node.attrs;
        const HW = ep.H * ep.W;
        const [w, b] = node.params;
        const idx = grp.pool ? `m->i${grp.out}` : 'nullptr';
        const accW = this.acc(w);
        if (this.acc(b) !== accW) throw new Error(`internal: ${b} and ${w} are shared differently`);
        const common = [gout, this.val(grp.out, true), idx, this.val(grp.input, true), `m->bm${node.id}`, `m->bi${node.id}`];
        L.push(`  { const int S = tk_bn_splits(m, B * ${HW}, ${C});`);
        L.push(this.launch(this.reg.get(K.bnBwdStats(ep)), `dim3(${C}, S)`, [...common, 'm->bnpart', 'B', 'S', 'm->bnsums', this.G(w), this.G(b), accW, 'm->counter']) + ' }');
        if (this.need[grp.input]) {
          const { out: o, base } = this.contrib(grp.input);
          L.push(this.launch(this.reg.get(K.bnBwdApply(ep)), `dim3(tk_cdiv(B * ${C * HW}, ${K.THREADS}))`, [...common, 'm->bnsums', this.P(w), base, o, 'B']));
        }
      } else {
        L.push(...this.backwardSingle(grp.node, gout));
      }
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

  private backwardSingle(n: Node, gout: string): string[] {
    const L: string[] = [];
    const N = perSample(n);
    const grid = (count: number) => `dim3(tk_cdiv(B * ${count}, ${K.THREADS}))`;
    const a = n.inputs[0];
    switch (n.op) {
      case 'maxpool2d':
      case 'avgpool2d': {
        if (!this.need[a]) return L;
        const op = n.op === 'maxpool2d' ? 'max' : 'avg';
        const { out, base } = this.contrib(a);
        const idx = op === 'max' ? `m->j${n.id}` : 'nullptr';
        L.push(this.launch(this.reg.get(K.poolBwd(op, this.poolShape(n))), grid(perSample(this.g.nodes[a])), [gout, idx, base, out, 'B']));
        return L;
      }
      case 'relu':
      case 'tanh': {
        if (!this.need[a]) return L;
        const { out, base } = this.contrib(a);
        L.push(this.launch(this.reg.get(K.actBwd(n.op, N)), grid(N), [gout, this.val(n.id, true), base, out, 'B']));
        return L;
      }
      case 'dropout': {
        if (!this.need[a]) return L;
        const { out, base } = this.contrib(a);
        L.push(this.launch(this.reg.get(K.dropoutBwd(this.dropoutSpec(n))), grid(N), [gout, base, out, 'm->sc', 'B']));
        return L;
      }
      case 'add':
        for (const i of n.inputs) if (this.need[i]) this.contribIdentity(i, gout, L);
        return L;
      case 'reshape':
        if (this.need[a]) this.contribIdentity(a, gout, L);
        return L;
      default:
        throw new Error(`internal: no single-op backward for ${n.op}`);
    }
  }

  // ---------------------------------------------------------------- package

  emit(): Map<string, string> {
    const fwdTrain = this.forward(true);
    const fwdEval = this.forward(false);
    const bwd = this.backward();
    const inN = numel(this.g.inputShape);
    const outNode = this.g.nodes[this.g.output];
    const classes = outNode.shape[0];
    const loss = this.reg.get(K.lossKernel(classes));
    const gather = this.reg.get(K.gather(inN));
    const sgd = this.reg.get(K.sgdKernel(this.pTotal));
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
    this.alloc('bnpart', 2 * this.bnC * 64 * 8, 'double');
    this.alloc('bnsums', 2 * this.bnC * 8, 'double');
    this.alloc('wpart', Math.max(1, this.wpartFloats) * 4);
    const files = new Map<string, string>();
    files.set(`${this.name}_cuda.h`, this.header());
    files.set(`${this.name}_cuda.cu`, this.source(fwdTrain, fwdEval, bwd, { loss, gather, sgd, sgdBlocks, inN, classes }));
    files.set('CMakeLists.txt', this.cmake());
    files.set('tk_cuda_emu.h', fs.readFileSync(path.join(TEMPLATES, 'tk_cuda_emu.h'), 'utf8'));
    return files;
  }

  /** state_dict keys (PyTorch order) then the optimizer state. */
  private stateTable(): string[] {
    const rows: string[] = [];
    const info = new Map(this.g.state.map((s) => [s.name, s]));
    const shape = (sh: number[]) => `${sh.length}, {${[...sh, 0, 0, 0, 0].slice(0, 4).join(', ')}}`;
    for (const [key, canon] of Object.entries(this.g.keys)) {
      const s = info.get(canon)!;
      if (s.dtype === 'I64') rows.push(`  {"${key}", TK_ST_COUNTER, ${this.nIdx.get(canon)}, 1, ${shape(s.shape)}},`);
      else if (s.kind === 'param') rows.push(`  {"${key}", TK_ST_PARAM, ${this.pOff.get(canon)}, ${numel(s.shape)}, ${shape(s.shape)}},`);
      else rows.push(`  {"${key}", TK_ST_BUFFER, ${this.sOff.get(canon)}, ${numel(s.shape)}, ${shape(s.shape)}},`);
    }
    for (const s of this.g.state)
      if (s.kind === 'param') rows.push(`  {"optimizer.momentum_buffer.${s.name}", TK_ST_MOMENTUM, ${this.pOff.get(s.name)}, ${numel(s.shape)}, ${shape(s.shape)}},`);
    rows.push(`  {"optimizer.momentum_started", TK_ST_FLAG, 0, 1, 0, {0, 0, 0, 0}},`);
    return rows;
  }

  private header(): string {
    const N = this.name;
    const U = N.toUpperCase();
    return `/* ${N}_cuda.h — C API of the CUDA package generated by tensorkiln for ${this.g.name}.
 *
 * Every function returns 0 (TK_CUDA_OK) or an error code; ${N}_cuda_last_error()
 * then describes the failure (a missing GPU or driver is an error, never an abort).
 * One handle must not be used from two threads at once.
 *
 * Shapes: input [batch, ${this.g.inputShape.join(', ')}] float32 NCHW, logits [batch, ${this.g.nodes[this.g.output].shape[0]}],
 * 1 <= batch <= ${N}_cuda_max_batch() = ${this.maxB}. State tensors go by PyTorch state_dict key
 * (shared modules answer under each of their keys), plus the optimizer state
 * "optimizer.momentum_buffer.<param>" (F32) and "optimizer.momentum_started" (I64 scalar).
 */
#ifndef ${U}_CUDA_H
#define ${U}_CUDA_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#ifndef TK_CUDA_COMMON_TYPES
#define TK_CUDA_COMMON_TYPES
enum {
  TK_CUDA_OK = 0,
  TK_CUDA_ERR_NO_DEVICE = 1,   /* no CUDA device or driver */
  TK_CUDA_ERR_CUDA = 2,        /* a CUDA call failed (message names it) */
  TK_CUDA_ERR_ARG = 3,         /* bad argument: batch size, null pointer, label, size */
  TK_CUDA_ERR_NAME = 4,        /* unknown state tensor name */
  TK_CUDA_ERR_STATE = 5        /* call out of order, e.g. train_epoch before set_dataset */
};
enum { TK_CUDA_F32 = 0, TK_CUDA_I64 = 1 };
/** One SGD step's hyper-parameters (torch.optim.SGD, dampening 0, no Nesterov) and loss penalties. */
typedef struct tk_cuda_hyper {
  float lr;
  float momentum;
  float weight_decay;
  float l1;        /* adds l1 * sum |p| over all parameters to the loss */
  float l2;        /* adds l2 * sum p^2 over all parameters to the loss */
  uint32_t seed;   /* dropout seed of the (first) step; step k of an epoch uses seed + k */
} tk_cuda_hyper;
typedef struct tk_cuda_epoch {
  double loss_sum;     /* sum over batches of the mean batch loss (penalties included) */
  int batches;
  long long correct;   /* training-mode predictions that matched the label */
} tk_cuda_epoch;
#endif

typedef struct ${N}_cuda ${N}_cuda;

/** Message of the last failed call on this thread ("" if none). */
const char* ${N}_cuda_last_error(void);
int ${N}_cuda_max_batch(void);
int ${N}_cuda_input_numel(void);
int ${N}_cuda_num_classes(void);

/** Creates a model on CUDA device \`device\`: parameters zero, running_var 1; load state with set_state. */
int ${N}_cuda_create(${N}_cuda** out, int device);
void ${N}_cuda_destroy(${N}_cuda* m);
/** Name of the device the model runs on. */
const char* ${N}_cuda_device_name(const ${N}_cuda* m);

/** Logits of x [batch, ...]. train != 0: batch statistics (BatchNorm running stats update), dropout with \`seed\`. */
int ${N}_cuda_forward(${N}_cuda* m, const float* x, int batch, int train, uint32_t seed, float* logits);
/** One SGD step on a batch: forward (train), loss, backward, update. loss and logits (train-mode, pre-step) may be NULL. */
int ${N}_cuda_train_step(${N}_cuda* m, const float* x, const int32_t* labels, int batch, const tk_cuda_hyper* h, double* loss, float* logits);

/** Uploads a dataset once (x [n, ...] normalised float32, labels [n] in 0..classes-1); it stays on the device. */
int ${N}_cuda_set_dataset(${N}_cuda* m, const float* x, const int32_t* labels, int n);
/**
 * Every step of one epoch: batches of order[0..n) (indices into the dataset), the last one partial.
 * One host synchronisation, at the end. use_graphs != 0 replays each step from a CUDA graph.
 */
int ${N}_cuda_train_epoch(${N}_cuda* m, const uint32_t* order, int n, int batch_size, const tk_cuda_hyper* h, int use_graphs, tk_cuda_epoch* out);
/** Eval-mode predictions over dataset rows [start, start + n): counts argmax == label. */
int ${N}_cuda_eval_dataset(${N}_cuda* m, int start, int n, long long* correct);

/** Cross-entropy and total loss (with penalties) of the last training step. */
int ${N}_cuda_last_loss(${N}_cuda* m, double* ce, double* total);
/** Gradient of the last training step (penalties included, weight decay not), by parameter name. */
int ${N}_cuda_get_grad(${N}_cuda* m, const char* name, float* dst, size_t count);

/** State tensors: state_dict keys in PyTorch order, then the optimizer state. */
int ${N}_cuda_state_count(void);
const char* ${N}_cuda_state_name(int i);
/** dtype TK_CUDA_F32 or TK_CUDA_I64; shape[0..ndim) (ndim <= 4). */
int ${N}_cuda_state_info(const char* name, int* dtype, int* ndim, int64_t* shape);
int ${N}_cuda_get_state(${N}_cuda* m, const char* name, void* dst, size_t bytes);
int ${N}_cuda_set_state(${N}_cuda* m, const char* name, const void* src, size_t bytes);
/** Waits for queued device work; reports asynchronous kernel failures. */
int ${N}_cuda_synchronize(${N}_cuda* m);

#ifdef __cplusplus
}
#endif
#endif
`;
  }

  private source(fwdTrain: string[], fwdEval: string[], bwd: string[], x: { loss: string; gather: string; sgd: string; sgdBlocks: number; inN: number; classes: number }): string {
    const N = this.name;
    const fields = this.allocs.map((a) => `  ${a.type}* ${a.name} = nullptr;`).join('\n');
    let off = 0;
    const carve: string[] = [];
    for (const a of this.allocs) {
      carve.push(`  m->${a.name} = reinterpret_cast<${a.type}*>(m->arena + ${off});`);
      off += Math.ceil(a.bytes / 256) * 256;
    }
    const arenaBytes = off;
    const rvInit: string[] = [];
    for (const s of this.g.state) if (s.kind === 'buffer' && s.dtype === 'F32' && s.name.endsWith('running_var')) rvInit.push(`  for (int i = 0; i < ${numel(s.shape)}; i++) ones[${this.sOff.get(s.name)} + i] = 1.f;`);
    const outVal = this.val(this.g.output, true);
    const outValEval = this.val(this.g.output, false);
    return `// ${N}_cuda.cu — generated by tensorkiln from ${this.g.name}; do not edit.
// ${this.reg.count} kernels for ${this.g.nodes.length} graph nodes (fused, deduplicated by signature); max batch ${this.maxB}.
#include "${N}_cuda.h"
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
#include <vector>

namespace {

${K.PRELUDE}
// ---- kernels

${this.reg.sources.join('\n')}
// ---- host side

constexpr int kMaxBatch = ${this.maxB};
constexpr int kInputNumel = ${x.inN};
constexpr int kClasses = ${x.classes};
constexpr size_t kParams = ${this.pTotal};
constexpr size_t kBuffers = ${this.sTotal};
constexpr size_t kCounters = ${this.nTotal};
constexpr size_t kArenaBytes = ${arenaBytes};
constexpr int kSgdBlocks = ${x.sgdBlocks};

enum { TK_ST_PARAM, TK_ST_BUFFER, TK_ST_COUNTER, TK_ST_MOMENTUM, TK_ST_FLAG };
struct StateEntry {
  const char* name;
  int kind;
  size_t offset;
  size_t numel;
  int ndim;
  int64_t shape[4];
};
const StateEntry kState[] = {
${this.stateTable().join('\n')}
};
constexpr int kStateCount = (int)(sizeof(kState) / sizeof(kState[0]));

thread_local std::string g_error;

int fail(int code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_error = std::string("${N}_cuda: ") + buf;
  return code;
}

int cuda_fail(cudaError_t e, const char* what) {
  return fail(TK_CUDA_ERR_CUDA, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define TK_TRY(call) do { cudaError_t tk_e = (call); if (tk_e != cudaSuccess) return cuda_fail(tk_e, #call); } while (0)

inline unsigned tk_cdiv(long long a, long long b) { return (unsigned)((a + b - 1) / b); }

const StateEntry* find_state(const char* name) {
  if (!name) return nullptr;
  for (int i = 0; i < kStateCount; i++)
    if (std::strcmp(kState[i].name, name) == 0) return &kState[i];
  return nullptr;
}

}  // namespace

struct ${N}_cuda {
  int device = 0;
  int sms = 1;
  cudaDeviceProp prop;
  cudaStream_t stream = nullptr;
  unsigned char* arena = nullptr;
  float* data = nullptr;
  int* labels = nullptr;
  unsigned* order = nullptr;
  int n_data = 0;
  cudaGraphExec_t graphs[kMaxBatch + 1] = {};
  TkScalars host_sc;
${fields}
};

namespace {

inline int tk_bn_splits(${N}_cuda* m, int n, int C) {
  int s = (2 * m->sms + C - 1) / C;
  const int most = (n + 1023) / 1024;
  if (s > most) s = most;
  if (s > 64) s = 64;
  return s < 1 ? 1 : s;
}

inline void tk_wgrad_splits(${N}_cuda* m, int B, int blocks, int* SB, int* splits) {
  int s = (4 * m->sms + blocks - 1) / blocks;
  if (s > B) s = B;
  if (s < 1) s = 1;
  *SB = (B + s - 1) / s;
  *splits = (B + *SB - 1) / *SB;
}

int enqueue_forward_train(${N}_cuda* m, int B) {
${fwdTrain.join('\n')}
  return 0;
}

int enqueue_forward_eval(${N}_cuda* m, int B) {
${fwdEval.join('\n')}
  return 0;
}

int enqueue_backward(${N}_cuda* m, int B) {
${bwd.join('\n')}
  return 0;
}

/** One training step on the batch in m->x / m->y (gathered from the dataset first when \`gather\`). */
int enqueue_step(${N}_cuda* m, int B, bool gather) {
  if (gather)
${this.launch(x.gather, `dim3(tk_cdiv(B * ${x.inN % 4 === 0 ? x.inN / 4 : x.inN}, ${K.THREADS}))`, ['m->data', 'm->labels', 'm->order', 'm->sc', 'm->x', 'm->y', 'B'])}
  if (int r = enqueue_forward_train(m, B)) return r;
${this.launch(x.loss, 'dim3(1)', [outVal, 'm->y', `m->g${this.g.output}`, 'm->sc', 'B'])}
  if (int r = enqueue_backward(m, B)) return r;
${this.launch(x.sgd, `dim3(${x.sgdBlocks})`, ['m->P', 'm->G', 'm->M', 'm->sc', 'm->sgdpart', 'B', 'm->counter'])}
  return 0;
}

int check_launches(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_fail(e, what);
  return 0;
}

/** Resets the per-call accumulators and sets seed and hyper-parameters (not momentum_started). */
int set_scalars(${N}_cuda* m, const tk_cuda_hyper* h, uint32_t seed) {
  TkScalars& s = m->host_sc;
  s.loss_sum = 0; s.loss_ce = 0; s.loss_total = 0; s.correct = 0; s.cursor = 0; s.step = 0; s.seed_base = seed;
  TK_TRY(cudaMemcpyAsync(m->sc, &s, offsetof(TkScalars, momentum_started), cudaMemcpyHostToDevice, m->stream));
  if (h) {
    s.lr = h->lr; s.momentum = h->momentum; s.weight_decay = h->weight_decay; s.l1 = h->l1; s.l2 = h->l2;
    TK_TRY(cudaMemcpyAsync(&m->sc->lr, &s.lr, sizeof(float) * 5, cudaMemcpyHostToDevice, m->stream));
  }
  return 0;
}

int read_scalars(${N}_cuda* m) {
  TK_TRY(cudaMemcpyAsync(&m->host_sc, m->sc, sizeof(TkScalars), cudaMemcpyDeviceToHost, m->stream));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return 0;
}

int check_batch(int batch) {
  if (batch < 1 || batch > kMaxBatch) return fail(TK_CUDA_ERR_ARG, "batch size %d is outside 1..%d (the max batch this package was generated for)", batch, kMaxBatch);
  return 0;
}

int check_hyper(const tk_cuda_hyper* h) {
  if (!h) return fail(TK_CUDA_ERR_ARG, "hyper-parameters are NULL");
  const float v[5] = {h->lr, h->momentum, h->weight_decay, h->l1, h->l2};
  const char* names[5] = {"lr", "momentum", "weight_decay", "l1", "l2"};
  for (int i = 0; i < 5; i++)
    if (!(v[i] == v[i]) || v[i] - v[i] != 0.f) return fail(TK_CUDA_ERR_ARG, "hyper-parameter %s is not a finite number", names[i]);
  return 0;
}

int check_labels(const int32_t* labels, int n) {
  for (int i = 0; i < n; i++)
    if (labels[i] < 0 || labels[i] >= kClasses) return fail(TK_CUDA_ERR_ARG, "label %d is %d; expected a class index in 0..%d", i, (int)labels[i], kClasses - 1);
  return 0;
}

void free_graphs(${N}_cuda* m) {
  for (int b = 0; b <= kMaxBatch; b++)
    if (m->graphs[b]) { cudaGraphExecDestroy(m->graphs[b]); m->graphs[b] = nullptr; }
}

int step_graph(${N}_cuda* m, int B, cudaGraphExec_t* out) {
  if (m->graphs[B]) { *out = m->graphs[B]; return 0; }
  TK_TRY(cudaStreamBeginCapture(m->stream, cudaStreamCaptureModeThreadLocal));
  int r = enqueue_step(m, B, true);
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(m->stream, &graph);
  if (r) { if (graph) cudaGraphDestroy(graph); return r; }
  if (e != cudaSuccess) return cuda_fail(e, "cudaStreamEndCapture (training step)");
  e = cudaGraphInstantiate(&m->graphs[B], graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) { m->graphs[B] = nullptr; return cuda_fail(e, "cudaGraphInstantiate (training step)"); }
  *out = m->graphs[B];
  return 0;
}

}  // namespace

extern "C" {

const char* ${N}_cuda_last_error(void) { return g_error.c_str(); }
int ${N}_cuda_max_batch(void) { return kMaxBatch; }
int ${N}_cuda_input_numel(void) { return kInputNumel; }
int ${N}_cuda_num_classes(void) { return kClasses; }

int ${N}_cuda_create(${N}_cuda** out, int device) {
  if (!out) return fail(TK_CUDA_ERR_ARG, "create: out is NULL");
  *out = nullptr;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0)
    return fail(TK_CUDA_ERR_NO_DEVICE, "no CUDA device available (cudaGetDeviceCount: %s); this build needs an NVIDIA GPU and driver",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
  if (device < 0 || device >= count) return fail(TK_CUDA_ERR_ARG, "device %d does not exist (%d CUDA device(s))", device, count);
  ${N}_cuda* m = new (std::nothrow) ${N}_cuda();
  if (!m) return fail(TK_CUDA_ERR_ARG, "out of host memory");
  m->device = device;
  std::memset(&m->host_sc, 0, sizeof m->host_sc);
  int r = 0;
  do {
    if ((e = cudaSetDevice(device)) != cudaSuccess) { r = cuda_fail(e, "cudaSetDevice"); break; }
    if ((e = cudaGetDeviceProperties(&m->prop, device)) != cudaSuccess) { r = cuda_fail(e, "cudaGetDeviceProperties"); break; }
    m->sms = m->prop.multiProcessorCount > 0 ? m->prop.multiProcessorCount : 1;
    if ((e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking)) != cudaSuccess) { r = cuda_fail(e, "cudaStreamCreate"); break; }
    if ((e = cudaMalloc(reinterpret_cast<void**>(&m->arena), kArenaBytes)) != cudaSuccess) { r = cuda_fail(e, "cudaMalloc (model arena)"); break; }
${carve.join('\n')}
    if ((e = cudaMemset(m->arena, 0, kArenaBytes)) != cudaSuccess) { r = cuda_fail(e, "cudaMemset"); break; }
    if (kBuffers) {
      std::vector<float> ones(kBuffers, 0.f);
${rvInit.join('\n')}
      if ((e = cudaMemcpy(m->S, ones.data(), kBuffers * sizeof(float), cudaMemcpyHostToDevice)) != cudaSuccess) { r = cuda_fail(e, "cudaMemcpy"); break; }
    }
    if ((e = cudaDeviceSynchronize()) != cudaSuccess) { r = cuda_fail(e, "cudaDeviceSynchronize"); break; }
  } while (0);
  if (r) { ${N}_cuda_destroy(m); return r; }
  *out = m;
  return 0;
}

void ${N}_cuda_destroy(${N}_cuda* m) {
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

const char* ${N}_cuda_device_name(const ${N}_cuda* m) { return m ? m->prop.name : ""; }

int ${N}_cuda_forward(${N}_cuda* m, const float* x, int batch, int train, uint32_t seed, float* logits) {
  if (!m || !x || !logits) return fail(TK_CUDA_ERR_ARG, "forward: NULL argument");
  if (int r = check_batch(batch)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(m->x, x, sizeof(float) * (size_t)batch * kInputNumel, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, nullptr, seed)) return r;
  const int B = batch;
  if (int r = train ? enqueue_forward_train(m, B) : enqueue_forward_eval(m, B)) return r;
  if (int r = check_launches("forward kernels")) return r;
  TK_TRY(cudaMemcpyAsync(logits, train ? ${outVal} : ${outValEval}, sizeof(float) * (size_t)B * kClasses, cudaMemcpyDeviceToHost, m->stream));
  TK_TRY(cudaStreamSynchronize(m->stream));
  return 0;
}

int ${N}_cuda_train_step(${N}_cuda* m, const float* x, const int32_t* labels, int batch, const tk_cuda_hyper* h, double* loss, float* logits) {
  if (!m || !x || !labels) return fail(TK_CUDA_ERR_ARG, "train_step: NULL argument");
  if (int r = check_batch(batch)) return r;
  if (int r = check_hyper(h)) return r;
  if (int r = check_labels(labels, batch)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(m->x, x, sizeof(float) * (size_t)batch * kInputNumel, cudaMemcpyHostToDevice, m->stream));
  TK_TRY(cudaMemcpyAsync(m->y, labels, sizeof(int32_t) * (size_t)batch, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, h, h->seed)) return r;
  if (int r = enqueue_step(m, batch, false)) return r;
  if (int r = check_launches("training step kernels")) return r;
  if (logits) TK_TRY(cudaMemcpyAsync(logits, ${outVal}, sizeof(float) * (size_t)batch * kClasses, cudaMemcpyDeviceToHost, m->stream));
  if (int r = read_scalars(m)) return r;
  if (loss) *loss = m->host_sc.loss_total;
  return 0;
}

int ${N}_cuda_set_dataset(${N}_cuda* m, const float* x, const int32_t* labels, int n) {
  if (!m || !x || !labels || n < 1) return fail(TK_CUDA_ERR_ARG, "set_dataset: NULL argument or n < 1");
  if (int r = check_labels(labels, n)) return r;
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  free_graphs(m);
  if (m->data) { cudaFree(m->data); m->data = nullptr; }
  if (m->labels) { cudaFree(m->labels); m->labels = nullptr; }
  if (m->order) { cudaFree(m->order); m->order = nullptr; }
  m->n_data = 0;
  TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->data), sizeof(float) * (size_t)n * kInputNumel));
  TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->labels), sizeof(int32_t) * (size_t)n));
  TK_TRY(cudaMalloc(reinterpret_cast<void**>(&m->order), sizeof(uint32_t) * (size_t)n));
  TK_TRY(cudaMemcpy(m->data, x, sizeof(float) * (size_t)n * kInputNumel, cudaMemcpyHostToDevice));
  TK_TRY(cudaMemcpy(m->labels, labels, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice));
  m->n_data = n;
  return 0;
}

int ${N}_cuda_train_epoch(${N}_cuda* m, const uint32_t* order, int n, int batch_size, const tk_cuda_hyper* h, int use_graphs, tk_cuda_epoch* out) {
  if (!m || !order || !out) return fail(TK_CUDA_ERR_ARG, "train_epoch: NULL argument");
  if (!m->n_data) return fail(TK_CUDA_ERR_STATE, "train_epoch: no dataset (call set_dataset first)");
  if (int r = check_batch(batch_size)) return r;
  if (int r = check_hyper(h)) return r;
  if (n < 0 || n > m->n_data) return fail(TK_CUDA_ERR_ARG, "train_epoch: n = %d, the dataset has %d samples", n, m->n_data);
  for (int i = 0; i < n; i++)
    if (order[i] >= (uint32_t)m->n_data) return fail(TK_CUDA_ERR_ARG, "train_epoch: order[%d] = %u is not a dataset index (n = %d)", i, order[i], m->n_data);
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaMemcpyAsync(m->order, order, sizeof(uint32_t) * (size_t)n, cudaMemcpyHostToDevice, m->stream));
  if (int r = set_scalars(m, h, h->seed)) return r;
  const int full = n / batch_size, rest = n % batch_size;
  for (int k = 0; k <= full; k++) {
    const int B = k < full ? batch_size : rest;
    if (B == 0) break;
    if (use_graphs) {
      cudaGraphExec_t g = nullptr;
      if (int r = step_graph(m, B, &g)) return r;
      TK_TRY(cudaGraphLaunch(g, m->stream));
    } else {
      if (int r = enqueue_step(m, B, true)) return r;
    }
  }
  if (int r = check_launches("training epoch kernels")) return r;
  if (int r = read_scalars(m)) return r;
  out->loss_sum = m->host_sc.loss_sum;
  out->batches = full + (rest ? 1 : 0);
  out->correct = m->host_sc.correct;
  return 0;
}

int ${N}_cuda_eval_dataset(${N}_cuda* m, int start, int n, long long* correct) {
  if (!m || !correct) return fail(TK_CUDA_ERR_ARG, "eval_dataset: NULL argument");
  if (!m->n_data) return fail(TK_CUDA_ERR_STATE, "eval_dataset: no dataset (call set_dataset first)");
  if (start < 0 || n < 0 || (long long)start + n > m->n_data) return fail(TK_CUDA_ERR_ARG, "eval_dataset: rows [%d, %d) outside the dataset of %d", start, start + n, m->n_data);
  TK_TRY(cudaSetDevice(m->device));
  std::vector<float> logits((size_t)kMaxBatch * kClasses);
  std::vector<int32_t> labels(kMaxBatch);
  long long hits = 0;
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
  return 0;
}

int ${N}_cuda_last_loss(${N}_cuda* m, double* ce, double* total) {
  if (!m) return fail(TK_CUDA_ERR_ARG, "last_loss: NULL model");
  if (int r = read_scalars(m)) return r;
  if (ce) *ce = m->host_sc.loss_ce;
  if (total) *total = m->host_sc.loss_total;
  return 0;
}

int ${N}_cuda_get_grad(${N}_cuda* m, const char* name, float* dst, size_t count) {
  if (!m || !dst) return fail(TK_CUDA_ERR_ARG, "get_grad: NULL argument");
  const StateEntry* s = find_state(name);
  if (!s || s->kind != TK_ST_PARAM) return fail(TK_CUDA_ERR_NAME, "get_grad: '%s' is not a parameter of ${this.g.name}", name ? name : "(null)");
  if (count != s->numel) return fail(TK_CUDA_ERR_ARG, "get_grad: '%s' has %zu values, not %zu", name, s->numel, count);
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  TK_TRY(cudaMemcpy(dst, m->G + s->offset, count * sizeof(float), cudaMemcpyDeviceToHost));
  return 0;
}

int ${N}_cuda_state_count(void) { return kStateCount; }
const char* ${N}_cuda_state_name(int i) { return i >= 0 && i < kStateCount ? kState[i].name : nullptr; }

int ${N}_cuda_state_info(const char* name, int* dtype, int* ndim, int64_t* shape) {
  const StateEntry* s = find_state(name);
  if (!s) return fail(TK_CUDA_ERR_NAME, "no state tensor '%s' in ${this.g.name}", name ? name : "(null)");
  if (dtype) *dtype = (s->kind == TK_ST_COUNTER || s->kind == TK_ST_FLAG) ? TK_CUDA_I64 : TK_CUDA_F32;
  if (ndim) *ndim = s->ndim;
  if (shape) for (int i = 0; i < 4; i++) shape[i] = s->shape[i];
  return 0;
}

static int state_ptr(${N}_cuda* m, const StateEntry* s, void** p, size_t* bytes) {
  switch (s->kind) {
    case TK_ST_PARAM: *p = m->P + s->offset; *bytes = s->numel * 4; return 0;
    case TK_ST_MOMENTUM: *p = m->M + s->offset; *bytes = s->numel * 4; return 0;
    case TK_ST_BUFFER: *p = m->S + s->offset; *bytes = s->numel * 4; return 0;
    case TK_ST_COUNTER: *p = m->NBT + s->offset; *bytes = 8; return 0;
    default: *p = nullptr; *bytes = 8; return 0;
  }
}

int ${N}_cuda_get_state(${N}_cuda* m, const char* name, void* dst, size_t bytes) {
  if (!m || !dst) return fail(TK_CUDA_ERR_ARG, "get_state: NULL argument");
  const StateEntry* s = find_state(name);
  if (!s) return fail(TK_CUDA_ERR_NAME, "no state tensor '%s' in ${this.g.name}", name ? name : "(null)");
  void* p; size_t need;
  state_ptr(m, s, &p, &need);
  if (bytes != need) return fail(TK_CUDA_ERR_ARG, "get_state: '%s' has %zu bytes, not %zu", name, need, bytes);
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  if (s->kind == TK_ST_FLAG) {
    int v = 0;
    TK_TRY(cudaMemcpy(&v, &m->sc->momentum_started, sizeof v, cudaMemcpyDeviceToHost));
    const int64_t w = v;
    std::memcpy(dst, &w, 8);
    return 0;
  }
  TK_TRY(cudaMemcpy(dst, p, bytes, cudaMemcpyDeviceToHost));
  return 0;
}

int ${N}_cuda_set_state(${N}_cuda* m, const char* name, const void* src, size_t bytes) {
  if (!m || !src) return fail(TK_CUDA_ERR_ARG, "set_state: NULL argument");
  const StateEntry* s = find_state(name);
  if (!s) return fail(TK_CUDA_ERR_NAME, "no state tensor '%s' in ${this.g.name}", name ? name : "(null)");
  void* p; size_t need;
  state_ptr(m, s, &p, &need);
  if (bytes != need) return fail(TK_CUDA_ERR_ARG, "set_state: '%s' needs %zu bytes, got %zu", name, need, bytes);
  TK_TRY(cudaSetDevice(m->device));
  TK_TRY(cudaStreamSynchronize(m->stream));
  if (s->kind == TK_ST_FLAG) {
    int64_t w;
    std::memcpy(&w, src, 8);
    const int v = w != 0;
    TK_TRY(cudaMemcpy(&m->sc->momentum_started, &v, sizeof v, cudaMemcpyHostToDevice));
    return 0;
  }
  TK_TRY(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice));
  return 0;
}

int ${N}_cuda_synchronize(${N}_cuda* m) {
  if (!m) return fail(TK_CUDA_ERR_ARG, "synchronize: NULL model");
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
cmake_minimum_required(VERSION 3.18)
option(TK_CUDA_EMU "build the kernels for the CPU emulator (tk_cuda_emu.h) instead of a GPU" OFF)
if(TK_CUDA_EMU)
  project(${N}_cuda LANGUAGES CXX)
  set(CMAKE_CXX_STANDARD 17)
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
`;
  }
}
