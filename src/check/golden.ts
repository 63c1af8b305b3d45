// Runs one PyTorch golden case (../shared/golden/<case>, format in its
// README.md) against a backend and reports, per tensor, how far it is from
// PyTorch. Procedure:
//   load weights.safetensors (state_dict keys → canonical names)
//   eval forward                                      → logits_eval
//   `steps` train steps on (x, labels), each: train forward, cross-entropy + penalties,
//     backward, SGD step; the first step gives        → logits_train, loss, loss_ce, grad.<param>
//     every step's loss                               → loss_steps (when the case has it)
//   the whole state_dict after the steps              → after.<key> (BatchNorm buffers included)
//   eval forward again                                → logits_eval_after
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Graph, HostTensor } from '../graph/ir.js';
import type { Module } from '../graph/module.js';
import { camelArgs, loadModel } from '../graph/load.js';
import { canonicalState, expandState } from '../graph/state.js';
import { trace } from '../graph/trace.js';
import { loadSafetensors, saveSafetensors, type Tensor } from '../io/safetensors.js';
import { stepOfEpoch, type OptimizerKind, type StepOptions } from '../train/rules.js';
import { makeSchedule, type Schedule, type ScheduleOptions } from '../train/schedule.js';
import { resolveTaps } from '../graph/taps.js';
import type { LossOptions } from '../ops/loss.js';
import type { BackendFactory, FloatArray } from './backend.js';
import { compareTensor, toNumbers, type TensorCheck, type Tolerance } from './compare.js';

/** The book's models, where case.json `model` names a class. */
export const DEFAULT_MODEL_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models/book.ts');

/** The README's tolerances for float32 backends. */
export interface GoldenTolerances {
  /** logits and losses */
  logits: Tolerance;
  /** each gradient tensor, relative to its largest element */
  grad: Tolerance;
  /** the state_dict after the step(s); I64 counters are always exact */
  after: Tolerance;
}

export const GOLDEN_TOLERANCES: GoldenTolerances = {
  logits: { mode: 'elementwise', atol: 1e-5, rtol: 1e-4 },
  grad: { mode: 'tensor', atol: 1e-6, rtol: 1e-4 },
  after: { mode: 'elementwise', atol: 1e-6, rtol: 1e-5 },
};

/** A schedule's learning rates and momenta, float64 on both sides. */
const SCHEDULE_TOLERANCE: Tolerance = { mode: 'elementwise', atol: 1e-12, rtol: 1e-9 };

/** case.json, the fields used here. */
export interface CaseJson {
  model: string;
  args?: Record<string, unknown>;
  batch: number;
  eval_only?: boolean;
  train?: {
    optimizer?: string;
    lr: number;
    momentum?: number;
    dampening?: number;
    nesterov?: boolean;
    weight_decay?: number;
    l2_lambda?: number;
    l1_lambda?: number;
    steps?: number;
    /** extended format (test/fixtures/GOLDEN.md) */
    loss_kind?: 'cross_entropy' | 'nll';
    label_smoothing?: number;
    betas?: number[];
    eps?: number;
    amsgrad?: boolean;
    maximize?: boolean;
    schedule?: unknown;
    schedule_interval?: string | null;
  };
  /** extended format: io.safetensors holds grad_input */
  grad_input?: boolean;
  /** extended format: the dropout modules whose masks io.safetensors holds */
  dropout?: { module: string; kind: string; p: number }[];
  /** extended format: module paths whose eval-mode outputs io.safetensors holds as act.<path> */
  activations?: string[];
  /** extended format: io.safetensors holds grad_input_eval (and loss_eval) */
  grad_input_eval?: boolean;
}

export interface GoldenOptions {
  /** file exporting the class case.json names (default models/book.ts) */
  modelFile?: string;
  /** the model classes by name, instead of importing modelFile (a bundled script has no .ts loader) */
  models?: Record<string, new (...args: never[]) => Module>;
  tolerances?: Partial<GoldenTolerances>;
  /** keep every computed tensor in report.computed, under io.safetensors' names */
  dump?: boolean;
}

export interface GoldenReport {
  caseName: string;
  dir: string;
  model: string;
  batch: number;
  steps: number;
  checks: TensorCheck[];
  pass: boolean;
  seconds: number;
  computed?: Map<string, Tensor>;
}

/** Case folders (those holding a case.json) directly under `root`, sorted. */
export function listGoldenCases(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(root, e.name, 'case.json')))
    .map((e) => path.join(root, e.name))
    .sort();
}

/** The optimizer options of a case's `train` block. */
export function caseStepOptions(c: CaseJson): StepOptions {
  const t = c.train;
  if (!t) throw new Error('case.json has no `train` block');
  const kinds: Record<string, OptimizerKind> = { SGD: 'sgd', Adam: 'adam', AdamW: 'adamw' };
  const optimizer = kinds[t.optimizer ?? 'SGD'];
  if (!optimizer || (t.dampening ?? 0) !== 0 || t.amsgrad || t.maximize)
    throw new Error(
      `only SGD (dampening 0), Adam and AdamW without amsgrad or maximize are supported; the case asks for ${JSON.stringify(t)}`,
    );
  const loss: LossOptions = t.loss_kind === 'nll' ? { kind: 'nll' } : { kind: 'cross_entropy', labelSmoothing: t.label_smoothing ?? 0 };
  const common = { lr: t.lr, weightDecay: t.weight_decay ?? 0, l1: t.l1_lambda ?? 0, l2: t.l2_lambda ?? 0, loss };
  if (optimizer === 'sgd') return { ...common, optimizer, momentum: t.momentum ?? 0, nesterov: !!t.nesterov };
  const betas: [number, number] = t.betas ? [t.betas[0], t.betas[1]] : [0.9, 0.999];
  return { ...common, optimizer, betas, eps: t.eps ?? 1e-8 };
}

/** A case's torch.optim.lr_scheduler description as src/train/schedule.ts options (what the golden files use). */
export function caseSchedule(c: CaseJson): ScheduleOptions | undefined {
  const s = c.train?.schedule as TorchSchedule | null | undefined;
  if (!s) return undefined;
  if (c.train?.schedule_interval !== 'step')
    throw new Error(`schedule_interval '${c.train?.schedule_interval}' is not supported (step only)`);
  if (s.kind === 'SequentialLR') {
    const [warm, main] = s.schedulers ?? [];
    if (s.milestones?.length !== 1 || warm?.kind !== 'LinearLR' || warm.end_factor !== 1 || warm.total_iters !== s.milestones[0] || !main)
      throw new Error(`only SequentialLR(LinearLR warm-up to 1 over the milestone, schedule) is supported, got ${JSON.stringify(s)}`);
    return {
      interval: 'step',
      warmup: { iters: s.milestones[0], startFactor: warm.start_factor as number },
      schedule: torchSchedule(main),
    };
  }
  return { interval: 'step', schedule: torchSchedule(s) };
}

interface TorchSchedule {
  kind: string;
  [k: string]: unknown;
  milestones?: number[];
  schedulers?: TorchSchedule[];
}

function torchSchedule(s: TorchSchedule): Schedule {
  const n = (k: string) => s[k] as number;
  switch (s.kind) {
    case 'StepLR':
      return { kind: 'step', stepSize: n('step_size'), gamma: n('gamma') };
    case 'MultiStepLR':
      return { kind: 'multistep', milestones: s.milestones!, gamma: n('gamma') };
    case 'CosineAnnealingLR':
      return { kind: 'cosine', tMax: n('T_max'), etaMin: n('eta_min') };
    case 'LinearLR':
      return { kind: 'linear', startFactor: n('start_factor'), endFactor: n('end_factor'), totalIters: n('total_iters') };
    case 'OneCycleLR':
      if (s.anneal_strategy !== 'cos' || s.three_phase)
        throw new Error(`OneCycleLR: only cos annealing in two phases is supported, got ${JSON.stringify(s)}`);
      return {
        kind: 'onecycle',
        maxLr: n('max_lr'),
        totalSteps: n('total_steps'),
        pctStart: n('pct_start'),
        divFactor: n('div_factor'),
        finalDivFactor: n('final_div_factor'),
        cycleMomentum: s.cycle_momentum as boolean,
        baseMomentum: n('base_momentum'),
        maxMomentum: n('max_momentum'),
      };
    default:
      throw new Error(`scheduler ${s.kind} is not supported`);
  }
}

/** The graph a case runs: its model class (from opts.models, else the model file) traced at x's shape. */
async function traceCase(caseDir: string, json: CaseJson, xShape: number[], opts: GoldenOptions): Promise<Graph> {
  const args = camelArgs(json.args ?? {});
  const Cls = opts.models?.[json.model];
  if (opts.models && !Cls) throw new Error(`${caseDir}: no model class '${json.model}' among ${Object.keys(opts.models).join(', ')}`);
  const model = Cls ? new Cls(args as never) : await loadModel(opts.modelFile ?? DEFAULT_MODEL_FILE, json.model, [args]);
  return trace(model, xShape.slice(1));
}

/** Whether a case checks d loss / d input (after a step, or in eval mode without one). */
const checksInputGrad = (json: CaseJson) => json.grad_input === true || json.grad_input_eval === true;

/** What a case needs built: its graph, and whether it checks d loss / d input. */
export async function caseBuild(caseDir: string, opts: GoldenOptions = {}): Promise<{ graph: Graph; inputGrad: boolean }> {
  const json = JSON.parse(fs.readFileSync(path.join(caseDir, 'case.json'), 'utf8')) as CaseJson;
  const x = need(loadSafetensors(path.join(caseDir, 'io.safetensors')).tensors, 'x', caseDir);
  return { graph: await traceCase(caseDir, json, x.shape, opts), inputGrad: checksInputGrad(json) };
}

export async function runGoldenCase(caseDir: string, factory: BackendFactory, opts: GoldenOptions = {}): Promise<GoldenReport> {
  const started = performance.now();
  const tol = { ...GOLDEN_TOLERANCES, ...opts.tolerances };
  const json = JSON.parse(fs.readFileSync(path.join(caseDir, 'case.json'), 'utf8')) as CaseJson;
  const weights = loadSafetensors(path.join(caseDir, 'weights.safetensors')).tensors;
  const io = loadSafetensors(path.join(caseDir, 'io.safetensors')).tensors;
  const x = need(io, 'x', caseDir);
  const batch = x.shape[0];
  if (batch !== json.batch) throw new Error(`${caseDir}: x has batch ${batch}, case.json says ${json.batch}`);
  const xData = x.data as Float32Array;
  const labels = Int32Array.from(toNumbers(need(io, 'labels', caseDir).data as BigInt64Array));

  const graph = await traceCase(caseDir, json, x.shape, opts);
  const state = canonicalState(graph, weights as Map<string, HostTensor>, `${caseDir}/weights.safetensors`);
  const taps = json.activations?.length ? resolveTaps(graph, json.activations) : [];
  const backend = await factory(graph, { inputGrad: checksInputGrad(json), taps });
  const dropout = json.dropout ?? [];
  // PyTorch's dropout masks come from its RNG: only a backend that replays them can match train mode
  const replay = dropout.length > 0 && backend.replayDropout !== undefined;
  const skipTrain = dropout.length > 0 && !replay ? 'dropout masks are PyTorch RNG draws; only the interpreter replays them' : '';

  const checks: TensorCheck[] = [];
  const computed = new Map<string, Tensor>();
  // `ref`: the io tensor to compare with, when it is named otherwise
  const check = (
    name: string,
    got: FloatArray | number[] | BigInt64Array | undefined,
    shape: number[],
    t: Tolerance,
    skip = '',
    ref = io.get(name),
  ) => {
    if (got) computed.set(name, asTensor(got, shape));
    if (skip && ref) {
      checks.push({
        name,
        numel: ref.shape.reduce((a, b) => a * b, 1),
        worstAbs: NaN,
        worstRel: NaN,
        ratio: 0,
        worstIndex: -1,
        pass: true,
        skipped: true,
        note: skip,
      });
      return;
    }
    checks.push(compareTensor(name, got && toNumbers(got), ref && toNumbers(ref.data as Float32Array | BigInt64Array), t));
  };
  const masksOf = (s: number): Map<string, FloatArray> =>
    new Map(
      dropout.map((d) => {
        const many = io.get(`mask_steps.${d.module}`);
        const m = many
          ? (many.data as Float32Array).subarray(s * (many.data.length / many.shape[0]), (s + 1) * (many.data.length / many.shape[0]))
          : need(io, `mask.${d.module}`, caseDir).data;
        return [d.module, m as Float32Array];
      }),
    );

  // looking inside (activations, input gradients without a step) before the steps, which then show that it changed no state
  const probeChecks = () => {
    const loss = json.train ? caseStepOptions(json).loss : undefined;
    if (taps.length) {
      const got = backend.activations?.(
        xData,
        batch,
        taps.map((t) => t.node),
        { train: false },
      );
      taps.forEach((t, i) => check(`act.${t.name}`, got?.[i], [batch, ...t.shape], tol.logits));
    }
    if (json.grad_input_eval) {
      const r = backend.inputGradient?.(xData, labels, batch, { train: false, loss });
      check('grad_input_eval', r?.grad, x.shape, tol.grad);
      if (io.has('loss_eval')) check('loss_eval', r && [r.loss], [], tol.logits);
    }
    if (json.grad_input && !json.eval_only && backend.inputGradient) {
      if (replay) backend.replayDropout!(masksOf(0));
      const r = backend.inputGradient(xData, labels, batch, { train: true, loss });
      check('grad_input_nostep', r.grad, x.shape, tol.grad, skipTrain, io.get('grad_input'));
    }
  };

  try {
    backend.loadState(state);
    const logitsShape = [batch, graph.nodes[graph.output].shape[0]];
    check('logits_eval', backend.forward(xData, batch, { train: false }), logitsShape, tol.logits);
    probeChecks();

    const steps = json.eval_only ? 0 : (json.train?.steps ?? 1);
    if (steps > 0) {
      const step = caseStepOptions(json);
      const sched = caseSchedule(json);
      const at = sched && makeSchedule(sched, step.lr, steps);
      const plan = Array.from({ length: steps }, (_, s) => at?.(s) ?? { lr: step.lr });
      // the schedule's own values against PyTorch's (float64 both: a closed form against its recursion)
      if (io.has('lr_steps'))
        check(
          'lr_steps',
          plan.map((v) => v.lr),
          [steps],
          SCHEDULE_TOLERANCE,
        );
      if (io.has('momentum_steps'))
        check(
          'momentum_steps',
          plan.map((v) => v.momentum ?? step.momentum ?? step.betas![0]),
          [steps],
          SCHEDULE_TOLERANCE,
        );
      // each step's options by the training loop's own rule (rules.ts stepOfEpoch)
      const momentumSteps = plan[0].momentum === undefined ? undefined : Float64Array.from(plan, (v) => v.momentum!);
      const scheduled = { ...step, lrSteps: Float64Array.from(plan, (v) => v.lr), ...(momentumSteps && { momentumSteps }) };
      const losses: number[] = [];
      for (let s = 0; s < steps; s++) {
        if (replay) backend.replayDropout!(masksOf(s));
        const r = backend.trainStep(xData, labels, batch, stepOfEpoch(scheduled, s));
        losses.push(r.loss);
        if (s > 0) continue;
        check('logits_train', r.logits, logitsShape, tol.logits, skipTrain);
        check('loss', [r.loss], [], tol.logits, skipTrain);
        if (io.has('loss_ce')) check('loss_ce', [r.lossCE], [], tol.logits, skipTrain);
        for (const p of graph.state.filter((e) => e.kind === 'param'))
          check(`grad.${p.name}`, r.grads.get(p.name), p.shape, tol.grad, skipTrain);
        if (json.grad_input) check('grad_input', r.inputGrad, x.shape, tol.grad, skipTrain);
      }
      if (io.has('loss_steps')) check('loss_steps', losses, [steps], tol.logits, skipTrain);
      const after = expandState(graph, backend.stateDict());
      for (const key of weights.keys()) {
        const t = after.get(key)!;
        check(`after.${key}`, t.data, t.shape, t.dtype === 'I64' ? { mode: 'exact', atol: 0, rtol: 0 } : tol.after, skipTrain);
      }
      const optim = backend.optimizerState?.();
      for (const [key, ref] of io)
        if (key.startsWith('optim.')) {
          const got = optim?.get(key.slice(6));
          check(key, got?.data, ref.shape, ref.dtype === 'I64' ? { mode: 'exact', atol: 0, rtol: 0 } : tol.after, skipTrain);
        }
      check('logits_eval_after', backend.forward(xData, batch, { train: false }), logitsShape, tol.logits, skipTrain);
    }
  } finally {
    backend.dispose?.();
  }
  return {
    caseName: path.basename(caseDir),
    dir: caseDir,
    model: json.model,
    batch,
    steps: json.eval_only ? 0 : (json.train?.steps ?? 1),
    checks,
    pass: checks.every((c) => c.pass || c.skipped),
    seconds: (performance.now() - started) / 1000,
    ...(opts.dump && { computed }),
  };
}

/** Writes report.computed (from a run with `dump: true`) as a safetensors file. */
export function saveGoldenDump(report: GoldenReport, file: string): void {
  if (!report.computed) throw new Error('the report holds no tensors: run the case with { dump: true }');
  saveSafetensors(file, report.computed, { format: 'golden-v1-computed', case: report.caseName, model: report.model });
}

/** A table: one row per tensor with its worst errors; failures marked. With `failuresOnly`, passing rows are left out. */
export function formatReport(r: GoldenReport, opts: { failuresOnly?: boolean } = {}): string {
  const worst = r.checks.reduce<TensorCheck | undefined>((a, c) => (!a || c.ratio > a.ratio ? c : a), undefined);
  const head =
    `${r.pass ? 'PASS' : 'FAIL'} ${r.caseName} (${r.model}, batch ${r.batch}, ${r.steps} step${r.steps === 1 ? '' : 's'}): ` +
    `${r.checks.length} tensors, ${r.checks.filter((c) => !c.pass).length} failed` +
    (r.checks.some((c) => c.skipped) ? `, ${r.checks.filter((c) => c.skipped).length} skipped` : '') +
    (worst ? `, worst ratio to tolerance ${fmt(worst.ratio)} (${worst.name})` : '') +
    `, ${r.seconds.toFixed(2)} s`;
  const rows = r.checks.filter((c) => !opts.failuresOnly || !c.pass);
  if (!rows.length) return head;
  const w = Math.max(6, ...rows.map((c) => c.name.length));
  const line = (cells: string[]) =>
    `  ${cells[0].padEnd(w)}  ${cells
      .slice(1, 5)
      .map((s) => s.padStart(10))
      .join('  ')}  ${cells[5]}`;
  return [
    head,
    line(['tensor', 'numel', 'worst abs', 'worst rel', 'ratio', 'ok']),
    ...rows.map((c) =>
      line([
        c.name,
        String(c.numel),
        fmt(c.worstAbs),
        fmt(c.worstRel),
        fmt(c.ratio),
        c.skipped ? `skipped: ${c.note}` : c.pass ? 'ok' : `FAIL${c.note ? `: ${c.note}` : ` at [${c.worstIndex}]`}`,
      ]),
    ),
  ].join('\n');
}

function fmt(v: number): string {
  return v === 0 ? '0' : Number.isFinite(v) ? v.toExponential(2) : String(v);
}

function need(m: Map<string, Tensor>, name: string, dir: string): Tensor {
  const t = m.get(name);
  if (!t) throw new Error(`${dir}/io.safetensors has no tensor '${name}'`);
  return t;
}

function asTensor(data: FloatArray | number[] | BigInt64Array, shape: number[]): Tensor {
  if (data instanceof BigInt64Array) return { dtype: 'I64', shape, data: data.slice() };
  if (data instanceof Float32Array) return { dtype: 'F32', shape, data: data.slice() };
  return { dtype: 'F64', shape, data: Float64Array.from(data) };
}
