// Renders a Plan as C++ (templates/cpu, templates/c): one function per
// deduplicated kernel, the forward/backward call sequences (runs of repeated
// blocks become loops over a table of buffer offsets, so depth costs a table
// row, not code), the SGD update printed from src/train/rules.ts.
import { cArith } from '../../ops/expr.js';
import { bnStatsC } from '../../ops/batchnorm.js';
import { hashC } from '../../ops/hash.js';
import { AUGMENT_STREAM, MAX_CROP_PADDING } from '../../data/augment.js';
import { lossC } from '../../ops/loss.js';
import { adamView, penaltyGrad, penaltyLoss, sgdStep, type StepTerms } from '../../train/rules.js';
import type { Graph } from '../../graph/ir.js';
import type { Arg, Call, Kernel, Plan } from './plan.js';
import { render } from '../templates.js';

export const CODEGEN_VERSION = '1';

export interface CpuSources {
  header: string;
  source: string;
  runtime: string;
}

export function prefixOf(name: string): string {
  return `tk_${name}`;
}

/** Names and shapes every template of a package uses. */
export function baseView(graph: Graph, name: string, classes: number) {
  const prefix = prefixOf(name);
  return {
    version: CODEGEN_VERSION,
    prefix,
    PREFIX: prefix.toUpperCase(),
    model: graph.name,
    inC: graph.inputShape[0],
    inH: graph.inputShape[1],
    inW: graph.inputShape[2],
    classes,
    /** the shared node/js templates also render the CUDA package's binding */
    cuda: false,
  };
}

function kernelName(k: Kernel): string {
  return `k${k.id}_${k.kind}`;
}

function renderKernel(k: Kernel): string {
  const params = ['const Ctx& c', ...k.params.map(([t, n]) => `${t} ${n}`)].join(', ');
  const consts = k.consts.map(([n, v]) => {
    // activation functors are types; the rest are ints, bools and enum values
    if (typeof v === 'string' && /^(tk::)?Act/.test(v)) return `  using ${n} = ${v};`;
    const type = typeof v === 'number' ? 'int' : v === 'true' || v === 'false' ? 'bool' : 'int';
    return `  constexpr ${type} ${n} = ${v};`;
  });
  const call = `${k.fn}<${k.consts.map((c) => c[0]).join(', ')}>(c, ${k.params.map((p) => p[1]).join(', ')});`;
  return ['', ...k.doc.map((d) => `// ${d}`), `[[maybe_unused]] void ${kernelName(k)}(${params}) {`, ...consts, `  ${call}`, '}'].join(
    '\n',
  );
}

interface Slot {
  call: Call;
  /** signature of the call with its buffer offsets blanked */
  sig: string;
  offsets: number[];
}

function slots(calls: Call[], offset: Map<string, { off: number; elem: string }>): Slot[] {
  return calls.map((call) => {
    const offsets: number[] = [];
    const parts = call.args.map((a) => {
      if ('buf' in a) {
        offsets.push(offset.get(a.buf)!.off);
        return `${offset.get(a.buf)!.elem}#`;
      }
      if ('red' in a) {
        offsets.push(a.red);
        return 'red#';
      }
      return a.expr;
    });
    return { call, sig: `${call.barrier ? 'B' : ''}${call.when ?? ''}|${call.kernel.id}|${parts.join(',')}`, offsets };
  });
}

function argText(a: Arg, offset: Map<string, { off: number; elem: string }>, tableRef?: string): string {
  if ('expr' in a) return a.expr;
  if ('red' in a) return `c.red + (size_t)(${tableRef ?? a.red}) * c.nt`;
  const b = offset.get(a.buf)!;
  const macro = b.elem === 'uint8_t' ? 'U8' : 'F';
  return `${macro}(${tableRef ?? b.off})`;
}

function callText(s: Slot, offset: Map<string, { off: number; elem: string }>, table?: (j: number) => string): string {
  let j = 0;
  const args = s.call.args.map((a) => ('expr' in a ? argText(a, offset) : argText(a, offset, table?.(j++))));
  const text = `${kernelName(s.call.kernel)}(c, ${args.join(', ')});`;
  const call = s.call.when ? `if (${s.call.when}) ${text}` : text;
  return s.call.barrier && s.call.when !== '!c.train'
    ? `TK_BARRIER();  // the output reuses memory other threads may still read\n  ${call}`
    : call;
}

/** The longest periodic run starting at i: a block of p items repeated r >= 3 times ({0, 0} if none). */
export function findRun(sigs: string[], i: number, maxPeriod = 16): { p: number; r: number } {
  let best = { p: 0, r: 0 };
  for (let p = 1; p <= maxPeriod && i + 2 * p <= sigs.length; p++) {
    let r = 1;
    while (i + (r + 1) * p <= sigs.length && sigs.slice(i + r * p, i + (r + 1) * p).every((s, k) => s === sigs[i + k])) r++;
    if (r >= 3 && r * p > best.r * best.p) best = { p, r };
  }
  return best;
}

/** Lines with periodic runs folded into `r × [ ... ]`. */
export function foldRuns(lines: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < lines.length;) {
    const { p, r } = findRun(lines, i);
    if (r === 0) {
      out.push(lines[i++]);
      continue;
    }
    out.push(`${r} x [`, ...lines.slice(i, i + p).map((l) => `  ${l}`), ']');
    i += r * p;
  }
  return out;
}

/** Emits calls; periodic runs (a block of calls repeated >= 3 times) become a loop over an offset table. */
export function emitCalls(calls: Call[], offset: Map<string, { off: number; elem: string }>, tag: string): string {
  const ss = slots(calls, offset);
  const out: string[] = [];
  let tables = 0;
  const sigs = ss.map((x) => x.sig);
  let i = 0;
  while (i < ss.length) {
    const best = findRun(sigs, i);
    if (best.r === 0) {
      out.push(`  // ${ss[i].call.comment}`, `  ${callText(ss[i], offset)}`);
      i++;
      continue;
    }
    const { p, r } = best;
    const cols = ss.slice(i, i + p).reduce((n, s) => n + s.offsets.length, 0);
    const name = `T${tag}${tables++}`;
    const rows: string[] = [];
    for (let k = 0; k < r; k++)
      rows.push(
        `{${ss
          .slice(i + k * p, i + (k + 1) * p)
          .flatMap((s) => s.offsets)
          .join(', ')}}`,
      );
    out.push(`  // ${r} repetitions of ${p} call(s); per-sample byte offsets of their buffers, one row per repetition`);
    out.push(`  static const uint32_t ${name}[${r}][${cols}] = {${rows.join(', ')}};`);
    out.push(`  for (int r = 0; r < ${r}; ++r) {`);
    let col = 0;
    for (const s of ss.slice(i, i + p)) {
      const base = col;
      out.push(`    // ${s.call.comment}`, `    ${callText(s, offset, (j) => `${name}[r][${base + j}]`)}`);
      col += s.offsets.length;
    }
    out.push('  }');
    i += r * p;
  }
  return out.join('\n');
}

/** Dropout nodes by stream: their count and values per sample. */
export function dropoutView(g: Graph): {
  numDropout: number;
  dropoutNumel: string;
  dropouts: { module: string; stream: number; numel: number }[];
} {
  const ds = g.nodes.flatMap((n) =>
    n.op === 'dropout' ? [{ module: n.module, stream: n.attrs.stream, numel: n.shape.reduce((a, b) => a * b, 1) }] : [],
  );
  ds.sort((a, b) => a.stream - b.stream);
  if (ds.some((d, i) => d.stream !== i)) throw new Error('internal: dropout streams are not 0..n-1');
  return { numDropout: ds.length, dropoutNumel: ds.map((d) => `${d.numel},`).join(' '), dropouts: ds };
}

/** The BatchNorm formulas of src/ops/batchnorm.ts as C, in the runtime's variables. */
function bnView() {
  const b = bnStatsC({
    mean: 'mean',
    variance: 'var',
    n: 'n',
    eps: '(double)eps',
    momentum: '(double)momentum',
    rmean: '(double)rmean[ch]',
    rvar: '(double)rvar[ch]',
  });
  return { bnInvstd: b.invstd, bnRunningMean: b.rmean, bnRunningVar: b.rvar };
}

/** The loss formulas of src/ops/loss.ts as C, in ce_loss's variables. */
function lossView() {
  const l = lossC({ z: '(double)z[k]', isLabel: '(k == y)', lse: 'lse', p: 'p', eps: 'eps', K: '(double)K', B: '(double)c.B' });
  return { ceTerm: l.ce.term, ceGrad: l.ce.grad, nllGrad: l.nllGrad };
}

// the fields of model.cpp.hbs's StepScalars s
const TERMS: StepTerms<string> = {
  lr: 's.lr',
  momentum: 's.momentum',
  weightDecay: 's.wd',
  l1: 's.l1',
  l2: 's.l2',
  nesterov: 's.nesterov',
  beta1: 's.beta1',
  beta2: 's.beta2',
  eps: 's.eps',
};

export function emitCpu(plan: Plan, name: string, maxBatch: number): CpuSources {
  const g = plan.graph;
  const offset = new Map(plan.buffers.map((b) => [b.name, { off: b.offset, elem: b.elem }]));
  const step = sgdStep(cArith, 'p', 'g', 'buf', 's.first', TERMS);
  const scratch = [...new Set(plan.kernels.map((k) => k.scratch).filter((s) => s !== '0'))];
  const state = g.state.map((s) => {
    const shape = [...s.shape, 0, 0, 0, 0].slice(0, 4);
    return {
      name: s.name,
      kind: s.kind === 'param' ? 'TK_PARAM' : 'TK_BUFFER',
      dtype: s.dtype === 'I64' ? 'TK_I64' : 'TK_F32',
      ndim: s.shape.length,
      shape: shape.join(', '),
      numel: s.shape.reduce((a, b) => a * b, 1),
    };
  });
  const where: number[] = [];
  const off: number[] = [];
  for (const [i] of g.state.entries()) {
    const p = plan.params.find((q) => q.index === i);
    const f = plan.fbuffers.find((q) => q.index === i);
    const ib = plan.ibuffers.find((q) => q.index === i);
    where.push(p ? 0 : f ? 1 : 2);
    off.push(p?.offset ?? f?.offset ?? ib!.offset);
  }
  const view = {
    ...baseView(g, name, plan.classes),
    inputNumel: plan.inputNumel,
    maxBatch,
    numState: g.state.length,
    numParams: plan.params.length,
    paramFloats: plan.paramFloats,
    fbufFloats: plan.fbuffers.reduce((a, b) => a + b.numel, 0),
    ibufCount: plan.ibuffers.reduce((a, b) => a + b.numel, 0),
    arenaBytesPerSample: plan.arenaBytesPerSample,
    redPerThread: plan.redPerThread,
    graphSummary: `${g.nodes.length} nodes, input [B, ${g.inputShape.join(', ')}], ${plan.params.length} parameters (${plan.paramFloats} floats)`,
    numKernels: plan.kernels.length,
    numForward: plan.forward.length,
    numBackward: plan.backward.length,
    groups: foldRuns(plan.groups),
    kernels: plan.kernels.map(renderKernel).join('\n'),
    functors: plan.functors.map((f) => f.code).join('\n\n'),
    state,
    stateWhere: where.map((w) => `${w},`).join(' '),
    stateOff: off.map((w) => `${w},`).join(' '),
    paramOff: plan.params.map((p) => `${p.offset},`).join(' '),
    paramNumel: plan.params.map((p) => `${p.numel},`).join(' '),
    paramVec: plan.params.map((p) => `${p.vec},`).join(' '),
    scratchList: scratch.map((s) => `(size_t)(${s}),`).join(' '),
    forwardCode: emitCalls(plan.forward, offset, 'F'),
    backwardCode: emitCalls(plan.backward, offset, 'B'),
    logitsOff: offset.get(plan.loss.logits)!.off,
    lossBarrier: plan.loss.barrier ? 'TK_BARRIER();' : '',
    dlogitsOff: offset.get(plan.loss.dlogits)!.off,
    ...dropoutView(g),
    hasInputGrad: plan.inputGrad !== undefined,
    numTaps: plan.taps.length,
    taps: plan.taps.map((t) => ({
      name: t.name.replace(/[^A-Za-z0-9_.#-]/g, '_'),
      node: t.node,
      ndim: t.shape.length,
      shape: [...t.shape, 0, 0, 0, 0].slice(0, 4).join(', '),
      numel: t.shape.reduce((a, b) => a * b, 1),
    })),
    tapOff: plan.taps.map((t) => `${t.buffer ? offset.get(t.buffer)!.off : -1},`).join(' '),
    inputGradOff: plan.inputGrad ? offset.get(plan.inputGrad)!.off : 0,
    penaltyLoss: penaltyLoss(cArith, 'p', TERMS),
    penaltyGrad: penaltyGrad(cArith, 'p', TERMS),
    sgdBuf: step.buf,
    // the parameter update reads the momentum buffer just written (M[j]) instead of recomputing it
    sgdParam: step.p.split(step.buf).join('M[j]'),
    ...adamView(TERMS, { mv: 'mv', vv: 'vv', M: 'M[j]', V: 'V[j]' }),
    ...lossView(),
    ...bnView(),
    augmentStream: AUGMENT_STREAM,
    maxCropPadding: MAX_CROP_PADDING,
    hashFunctions: hashC('TK_INLINE', { mix: 'mix32', bits: 'hash_bits', uniform: 'hash_uniform', step: 'step_seed', below: 'hash_below' }),
    runningVar: plan.fbuffers.filter((b) => b.name.endsWith('.running_var')).map((b) => ({ numel: b.numel, offset: b.offset })),
  };
  return {
    header: render('c/api.h.hbs', view),
    source: render('cpu/model.cpp.hbs', view),
    runtime: render('cpu/tk_runtime.h.hbs', view),
  };
}
