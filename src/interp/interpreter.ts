// The reference interpreter: runs a Graph forward and backward in float64,
// calling each node's op in the registry (src/ops/), and trains it with the
// SGD and penalty rules of src/train/rules.ts. It is the oracle the compiled
// backends are checked against, so it favours clarity over speed.
import type { Backend, ForwardOptions, OptimizerTensor, ProbeOptions, StepResult } from '../check/backend.js';
import type { Graph, HostTensor, Node } from '../graph/ir.js';
import { numel } from '../graph/ir.js';
import type { Module } from '../graph/module.js';
import { canonicalState, expandState } from '../graph/state.js';
import { trace } from '../graph/trace.js';
import { numberArith } from '../ops/expr.js';
import { adamScalars, adamStep, penaltyGrad, penaltyLoss, sgdStep, stepTerms, type StepOptions, type StepTerms } from '../train/rules.js';
import { opOf } from '../ops/index.js';
import type { InterpBackward, InterpForward, Saved } from '../ops/types.js';
import { crossEntropy, type LossOptions } from '../ops/loss.js';

type F64 = Float64Array;

export type { ForwardOptions, ProbeOptions, StepResult };

export interface PenaltyOptions {
  /** λ of λ·Σ|p| over every parameter */
  l1?: number;
  /** λ of λ·Σp² over every parameter */
  l2?: number;
}

export interface LossResult {
  /** cross-entropy + penalties */
  loss: number;
  /** cross-entropy alone */
  lossCE: number;
  /** d(cross-entropy)/d(logits) [batch, classes]; the penalties do not depend on the logits */
  dlogits: F64;
}

export interface InterpreterStepResult extends StepResult {
  logits: F64;
  grads: Map<string, F64>;
}

/** Everything the last forward recorded, for backward. */
interface Tape {
  batch: number;
  train: boolean;
  /** output of every node, [batch, ...node.shape] */
  values: F64[];
  saved: Saved[];
}

export class Interpreter implements Backend {
  readonly graph: Graph;
  /** Float state (parameters and BatchNorm running statistics) by canonical name. Edit in place to perturb. */
  readonly values = new Map<string, F64>();
  /** I64 state (BatchNorm's num_batches_tracked) by canonical name. */
  readonly counters = new Map<string, bigint>();
  /** SGD momentum buffers by parameter; a parameter has none before its first step with momentum (PyTorch's rule). */
  readonly momentumBuffers = new Map<string, F64>();
  /** Adam/AdamW exp_avg and exp_avg_sq by parameter, and the step count t they have seen (0: none yet). */
  readonly adamMoments = new Map<string, { m: F64; v: F64 }>();
  adamSteps = 0;
  /** Canonical names of the trainable parameters, in named_parameters() order. */
  readonly paramNames: string[];
  /** Gradient w.r.t. the input [batch, C, H, W] from the last backward({ inputGrad: true }). */
  inputGrad: F64 | null = null;
  /** Dropout multipliers drawn by PyTorch, by module path, replayed instead of the hash (gen check). */
  masks: Map<string, F64> | null = null;

  replayDropout(masks: Map<string, Float32Array | Float64Array>): void {
    this.masks = new Map([...masks].map(([k, v]) => [k, Float64Array.from(v)]));
  }
  private tape: Tape | null = null;

  /**
   * `state`: every parameter and buffer, by canonical name (graph.state) or by
   * state_dict key (graph.keys). Without it all state is zero until loadState.
   */
  constructor(graph: Graph, state?: Map<string, HostTensor>) {
    this.graph = graph;
    this.paramNames = graph.state.filter((s) => s.kind === 'param').map((s) => s.name);
    for (const s of graph.state) {
      if (s.dtype === 'I64') this.counters.set(s.name, 0n);
      else this.values.set(s.name, new Float64Array(numel(s.shape)));
    }
    if (state) this.loadState(state);
  }

  /** Traces `model` and starts from its current state. */
  static fromModel(model: Module, inputShape?: number[]): Interpreter {
    return new Interpreter(trace(model, inputShape), model.stateDict());
  }

  // ------------------------------------------------------------ state

  /** Replaces all state; strict (every tensor present, shapes and dtypes match), nothing changes on error. Momentum buffers are kept. */
  loadState(state: Map<string, HostTensor>): void {
    const full = new Map(state);
    for (const [key, canon] of Object.entries(this.graph.keys)) if (!full.has(key) && state.has(canon)) full.set(key, state.get(canon)!);
    const canonical = canonicalState(this.graph, full);
    for (const s of this.graph.state) {
      const t = canonical.get(s.name)!;
      if (s.dtype === 'I64') this.counters.set(s.name, BigInt(t.data[0]));
      else this.values.set(s.name, Float64Array.from(t.data as Float32Array));
    }
  }

  /** Every parameter and buffer by canonical name, as float32 / I64 copies. */
  stateDict(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const s of this.graph.state) {
      const data = s.dtype === 'I64' ? BigInt64Array.of(this.counters.get(s.name)!) : Float32Array.from(this.values.get(s.name)!);
      out.set(s.name, { dtype: s.dtype, shape: [...s.shape], data });
    }
    return out;
  }

  /** stateDict() under every PyTorch state_dict key (a shared module's tensors repeat under each of its names). */
  fullStateDict(): Map<string, HostTensor> {
    return expandState(this.graph, this.stateDict());
  }

  // ------------------------------------------------------------ forward

  /** Logits [batch, classes] of x [batch, C, H, W]. Train mode updates BatchNorm buffers, one update per BatchNorm call. */
  forward(x: Float32Array | Float64Array, batch: number, opts: ForwardOptions): F64 {
    const g = this.graph;
    const per = numel(g.inputShape);
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
    if (x.length !== batch * per)
      throw new Error(`input has ${x.length} values; ${g.name} needs batch·${g.inputShape.join('·')} = ${batch * per}`);
    const tape: Tape = { batch, train: opts.train, values: [], saved: [] };
    for (const node of g.nodes) {
      const out = new Float64Array(batch * numel(node.shape));
      tape.values[node.id] = out;
      if (node.op === 'input') {
        out.set(x);
        tape.saved[node.id] = {};
      } else tape.saved[node.id] = this.forwardNode(node, out, tape, opts.seed ?? 0);
    }
    this.tape = tape;
    return tape.values[g.output].slice();
  }

  private forwardNode(node: Node, out: F64, t: Tape, seed: number): Saved {
    const c: InterpForward = {
      B: t.batch,
      train: t.train,
      seed,
      x: node.inputs.map((i) => t.values[i]),
      xShape: node.inputs.map((i) => this.graph.nodes[i].shape),
      out,
      param: (i) => this.values.get(node.params[i])!,
      bump: (i) => this.counters.set(node.params[i], this.counters.get(node.params[i])! + 1n),
      mask: (n) => this.masks?.get(n.module),
    };
    return opOf(node).forward(node, c);
  }

  // ------------------------------------------------------------ backward

  /**
   * Gradients of the last forward's output, given dlogits [batch, classes], by
   * canonical parameter name. Parameters used by several nodes sum over uses.
   * With `inputGrad`, also sets this.inputGrad.
   */
  backward(dlogits: ArrayLike<number>, opts: { inputGrad?: boolean } = {}): Map<string, F64> {
    const t = this.tape;
    if (!t) throw new Error('backward needs a forward first');
    const g = this.graph;
    if (dlogits.length !== t.values[g.output].length)
      throw new Error(`dlogits has ${dlogits.length} values; the output is [${t.batch}, ${g.nodes[g.output].shape}]`);
    const grads = new Map(this.paramNames.map((n) => [n, new Float64Array(this.values.get(n)!.length)]));
    const dvalues: (F64 | undefined)[] = [];
    dvalues[g.output] = Float64Array.from(dlogits);
    // Gradient of a node's input, zeroed at first use; null for the model input unless asked for.
    const dinput = (id: number): F64 | null => {
      if (id === 0 && !opts.inputGrad) return null;
      return (dvalues[id] ??= new Float64Array(t.values[id].length));
    };
    for (let id = g.nodes.length - 1; id > 0; id--) {
      const dout = dvalues[id];
      if (dout) this.backwardNode(g.nodes[id], dout, t, grads, dinput);
    }
    this.inputGrad = opts.inputGrad ? (dvalues[0] ?? new Float64Array(t.values[0].length)) : null;
    return grads;
  }

  private backwardNode(node: Node, dout: F64, t: Tape, grads: Map<string, F64>, dinput: (id: number) => F64 | null): void {
    const c: InterpBackward = {
      B: t.batch,
      train: t.train,
      x: node.inputs.map((i) => t.values[i]),
      xShape: node.inputs.map((i) => this.graph.nodes[i].shape),
      out: t.values[node.id],
      dout,
      saved: t.saved[node.id],
      param: (i) => this.values.get(node.params[i])!,
      dx: (i) => dinput(node.inputs[i]),
      grad: (i) => grads.get(node.params[i]) ?? null,
    };
    opOf(node).backward(node, c);
  }

  // ------------------------------------------------------------ looking inside

  /** Runs fn, then puts the BatchNorm buffers and counters back: a look inside changes no state. */
  private keepingState<T>(fn: () => T): T {
    const buffers = this.graph.state
      .filter((s) => s.kind === 'buffer' && s.dtype === 'F32')
      .map((s) => [s.name, this.values.get(s.name)!.slice()] as const);
    const counters = new Map(this.counters);
    try {
      return fn();
    } finally {
      for (const [k, v] of buffers) this.values.set(k, v);
      for (const [k, v] of counters) this.counters.set(k, v);
    }
  }

  /** The values of `nodes` after a forward of x, [batch, ...shape] each; no state changes (train mode too). */
  activations(x: Float32Array | Float64Array, batch: number, nodes: number[], opts: ForwardOptions): F64[] {
    return this.keepingState(() => {
      this.forward(x, batch, opts);
      return nodes.map((id) => this.tape!.values[id].slice());
    });
  }

  /** d loss / d x of (x, labels) in opts' mode (eval: as attacks use), without a step: no state changes. */
  inputGradient(
    x: Float32Array | Float64Array,
    labels: ArrayLike<number>,
    batch: number,
    opts: ProbeOptions,
  ): { grad: F64; logits: F64; loss: number } {
    return this.keepingState(() => {
      const logits = this.forward(x, batch, opts);
      const { lossCE, dlogits } = this.loss(logits, labels, batch, {}, opts.loss);
      this.backward(dlogits, { inputGrad: true });
      return { grad: this.inputGrad!, logits, loss: lossCE };
    });
  }

  // ------------------------------------------------------------ loss and training

  /** Σ over every parameter of l1·|p| + l2·p² (rules.ts penaltyLoss). */
  penalty(pen: PenaltyOptions): number {
    const h = stepTerms({ lr: 0, l1: pen.l1, l2: pen.l2 });
    if (h.l1 === 0 && h.l2 === 0) return 0;
    let total = 0;
    for (const name of this.paramNames) {
      let s = 0;
      for (const p of this.values.get(name)!) s += penaltyLoss(numberArith, p, h);
      total += s;
    }
    return total;
  }

  /** Mean cross-entropy of logits [batch, classes] plus the penalties; dlogits is the cross-entropy's gradient. */
  loss(
    logits: ArrayLike<number>,
    labels: ArrayLike<number>,
    batch: number,
    pen: PenaltyOptions = {},
    kind: LossOptions = { kind: 'cross_entropy' },
  ): LossResult {
    const classes = logits.length / batch;
    if (labels.length !== batch) throw new Error(`${labels.length} labels for a batch of ${batch}`);
    const { loss: lossCE, dlogits } = crossEntropy(logits, labels, batch, classes, kind);
    return { loss: lossCE + this.penalty(pen), lossCE, dlogits };
  }

  /** Adds the penalties' gradient l1·sign(p) + 2·l2·p (rules.ts penaltyGrad) to grads, in place. */
  addPenaltyGrads(grads: Map<string, F64>, pen: PenaltyOptions): void {
    const h = stepTerms({ lr: 0, l1: pen.l1, l2: pen.l2 });
    if (h.l1 === 0 && h.l2 === 0) return;
    for (const [name, g] of grads) {
      const p = this.values.get(name)!;
      for (let i = 0; i < g.length; i++) g[i] += penaltyGrad(numberArith, p[i], h);
    }
  }

  /** One optimizer step (rules.ts sgdStep or adamStep) per element of every parameter, from grads by canonical name. */
  optimizerUpdate(grads: Map<string, F64>, step: StepOptions): void {
    const h = stepTerms(step);
    const kind = step.optimizer ?? 'sgd';
    const holds = this.adamSteps > 0 ? 'Adam' : this.momentumBuffers.size ? 'SGD momentum' : '';
    if (holds && (kind === 'sgd') !== (holds === 'SGD momentum'))
      throw new Error(`the optimizer state holds ${holds} buffers; reset the optimizer before training with ${kind}`);
    for (const name of this.paramNames) if (!grads.has(name)) throw new Error(`optimizerUpdate: no gradient for '${name}'`);
    if (kind === 'sgd') this.sgdUpdate(grads, h);
    else this.adamUpdate(grads, h, kind === 'adamw' ? 1 : 0);
  }

  private sgdUpdate(grads: Map<string, F64>, h: StepTerms<number>): void {
    for (const name of this.paramNames) {
      const g = grads.get(name)!;
      const p = this.values.get(name)!;
      const old = this.momentumBuffers.get(name);
      const first = old === undefined ? 1 : 0;
      const buf = old ?? new Float64Array(p.length);
      for (let i = 0; i < p.length; i++) {
        const r = sgdStep(numberArith, p[i], g[i], buf[i], first, h);
        p[i] = r.p;
        buf[i] = r.buf;
      }
      // PyTorch keeps no momentum buffer when momentum is 0.
      if (h.momentum !== 0) this.momentumBuffers.set(name, buf);
    }
  }

  private adamUpdate(grads: Map<string, F64>, h: StepTerms<number>, decoupled: number): void {
    const t = ++this.adamSteps;
    const s = adamScalars(numberArith, h, h.beta1 ** t, h.beta2 ** t);
    for (const name of this.paramNames) {
      const g = grads.get(name)!;
      const p = this.values.get(name)!;
      let mv = this.adamMoments.get(name);
      if (!mv) this.adamMoments.set(name, (mv = { m: new Float64Array(p.length), v: new Float64Array(p.length) }));
      for (let i = 0; i < p.length; i++) {
        const r = adamStep(numberArith, p[i], g[i], mv.m[i], mv.v[i], decoupled, h, s);
        p[i] = r.p;
        mv.m[i] = r.m;
        mv.v[i] = r.v;
      }
    }
  }

  /** Forgets the optimizer state (momentum buffers, Adam moments and step count). */
  resetOptimizer(): void {
    this.momentumBuffers.clear();
    this.adamMoments.clear();
    this.adamSteps = 0;
  }

  /** The optimizer state as torch.optim's state_dict names it: `<param>.momentum_buffer`, `.exp_avg`, `.exp_avg_sq`, `.step`. */
  optimizerState(): Map<string, OptimizerTensor> {
    const out = new Map<string, OptimizerTensor>();
    const shape = (n: string) => [...this.graph.state.find((s) => s.name === n)!.shape];
    for (const [n, b] of this.momentumBuffers) out.set(`${n}.momentum_buffer`, { shape: shape(n), data: b.slice() });
    for (const [n, { m, v }] of this.adamMoments) {
      out.set(`${n}.step`, { shape: [], data: BigInt64Array.of(BigInt(this.adamSteps)) });
      out.set(`${n}.exp_avg`, { shape: shape(n), data: m.slice() });
      out.set(`${n}.exp_avg_sq`, { shape: shape(n), data: v.slice() });
    }
    return out;
  }

  /** forward(train) → loss with penalties → backward (+ penalty gradients) → SGD step. */
  trainStep(x: Float32Array | Float64Array, labels: ArrayLike<number>, batch: number, step: StepOptions, seed = 0): InterpreterStepResult {
    const h = stepTerms(step);
    const logits = this.forward(x, batch, { train: true, seed });
    const { loss, lossCE, dlogits } = this.loss(logits, labels, batch, h, step.loss);
    const grads = this.backward(dlogits, { inputGrad: true });
    this.addPenaltyGrads(grads, h);
    this.optimizerUpdate(grads, step);
    return { loss, lossCE, logits, grads, inputGrad: this.inputGrad! };
  }
}
