// The reference interpreter as a TrainableModel: slow, but it lets the training
// loop, checkpoints and resume be tested without a compiler.
import { numel, type Graph, type HostTensor } from '../graph/ir.js';
import { expandState } from '../graph/state.js';
import { Interpreter } from '../interp/index.js';
import { resolveTaps } from '../graph/taps.js';
import { batchOf, type Activation, type EpochResult, type InputGradientResult, type LookOptions, type TrainableModel } from './model.js';
import { stepOfEpoch, stepSeed, type EpochStepOptions, type StepOptions } from './rules.js';
import { augmentBatch, augments, checkAugment, type Augment } from '../data/augment.js';
import type { ImageShape } from '../data/dataset.js';

export class InterpreterModel implements TrainableModel {
  readonly interp: Interpreter;
  private training = true;
  /** steps taken so far; with `seed` it fixes each step's dropout masks */
  step = 0;

  constructor(
    readonly graph: Graph,
    state: Map<string, HostTensor>,
    readonly seed = 0,
    readonly maxBatch = 1024,
  ) {
    this.interp = new Interpreter(graph, state);
  }

  train(): void {
    this.training = true;
  }

  eval(): void {
    this.training = false;
  }

  forward(x: Float32Array, batch: number): Float32Array {
    return Float32Array.from(this.interp.forward(x, batch, { train: this.training, seed: stepSeed(this.seed, this.step) }));
  }

  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: StepOptions): number {
    return this.interp.trainStep(x, labels, batch, opts, stepSeed(this.seed, this.step++)).loss;
  }

  trainEpoch(
    x: Float32Array,
    labels: Int32Array,
    order: Uint32Array,
    batchSize: number,
    opts: EpochStepOptions,
    augment?: Augment,
  ): EpochResult {
    const per = x.length / labels.length;
    const aug = augments(augment) ? checkAugment(augment, this.graph.inputShape) : undefined;
    const shape = this.graph.inputShape as ImageShape;
    const r: EpochResult = { lossSum: 0, batches: 0, correct: 0 };
    for (let start = 0; start < order.length; start += batchSize) {
      const size = Math.min(batchSize, order.length - start);
      const bx = new Float32Array(size * per);
      const by = new Int32Array(size);
      for (let i = 0; i < size; i++) {
        bx.set(x.subarray(order[start + i] * per, (order[start + i] + 1) * per), i * per);
        by[i] = labels[order[start + i]];
      }
      const seed = stepSeed(this.seed, this.step++);
      const s = this.interp.trainStep(aug ? augmentBatch(bx, size, shape, aug, seed) : bx, by, size, stepOfEpoch(opts, r.batches), seed);
      r.lossSum += s.loss;
      r.batches++;
      const classes = s.logits.length / size;
      for (let b = 0; b < size; b++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (s.logits[b * classes + c] > s.logits[b * classes + best]) best = c;
        if (best === by[b]) r.correct++;
      }
    }
    return r;
  }

  async activations(x: Float32Array, names: readonly (string | number)[], o: LookOptions = {}): Promise<Map<string, Activation>> {
    const taps = resolveTaps(this.graph, names);
    const batch = batchOf(this.graph, x, this.maxBatch);
    const got = this.interp.activations(
      x,
      batch,
      taps.map((t) => t.node),
      this.look(o),
    );
    return new Map(taps.map((t, i) => [t.name, { node: t.node, shape: [batch, ...t.shape], data: Float32Array.from(got[i]) }]));
  }

  async inputGradient(x: Float32Array, labels: Int32Array, o: LookOptions = {}): Promise<InputGradientResult> {
    const batch = batchOf(this.graph, x, this.maxBatch, labels);
    const r = this.interp.inputGradient(x, labels, batch, { ...this.look(o), loss: o.loss });
    return { grad: Float32Array.from(r.grad), logits: Float32Array.from(r.logits), loss: r.loss };
  }

  private look(o: LookOptions): { train: boolean; seed: number } {
    return { train: !!o.train, seed: o.seed ?? stepSeed(this.seed, this.step) };
  }

  stateDict(): Map<string, HostTensor> {
    return expandState(this.graph, this.interp.stateDict());
  }

  loadStateDict(state: Map<string, HostTensor>): void {
    this.interp.loadState(state);
  }

  /** 'step', 'momentum.<param>' (SGD), 'exp_avg.<param>', 'exp_avg_sq.<param>' and 'adam_step' (Adam/AdamW). */
  trainingState(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    const i64 = (v: number): HostTensor => ({ dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(v)) });
    out.set('step', i64(this.step));
    const shapes = new Map(this.graph.state.map((s) => [s.name, s.shape]));
    const f32 = (name: string, b: Float64Array): HostTensor => ({
      dtype: 'F32',
      shape: [...shapes.get(name)!],
      data: Float32Array.from(b),
    });
    for (const [name, buf] of this.interp.momentumBuffers) out.set(`momentum.${name}`, f32(name, buf));
    if (this.interp.adamSteps > 0) out.set('adam_step', i64(this.interp.adamSteps));
    for (const [name, { m, v }] of this.interp.adamMoments) {
      out.set(`exp_avg.${name}`, f32(name, m));
      out.set(`exp_avg_sq.${name}`, f32(name, v));
    }
    return out;
  }

  loadTrainingState(state: Map<string, HostTensor>): void {
    const step = state.get('step');
    if (!step || step.dtype !== 'I64') throw new Error("training state has no I64 'step'");
    const adam = state.get('adam_step');
    if (adam && adam.dtype !== 'I64') throw new Error("training state: 'adam_step' must be I64");
    const params = new Set(this.interp.paramNames);
    const sizes = new Map(this.graph.state.map((s) => [s.name, numel(s.shape)]));
    const slots = ['momentum', 'exp_avg', 'exp_avg_sq'];
    // every entry is checked before anything changes
    for (const [k, t] of state) {
      if (k === 'step' || k === 'adam_step') continue;
      const dot = k.indexOf('.');
      const slot = k.slice(0, dot);
      const name = k.slice(dot + 1);
      if (dot < 0 || !slots.includes(slot) || !params.has(name)) throw new Error(`training state: unexpected key '${k}'`);
      if ((slot !== 'momentum') !== !!adam)
        throw new Error(`training state: '${k}' ${adam ? 'is an SGD buffer beside Adam state' : 'needs adam_step'}`);
      if (t.data.length !== sizes.get(name))
        throw new Error(`training state: '${k}' has ${t.data.length} values, expected ${sizes.get(name)}`);
    }
    this.interp.resetOptimizer();
    const f64 = (t: HostTensor) => Float64Array.from(t.data as Float32Array);
    for (const [k, t] of state) {
      const name = k.slice(k.indexOf('.') + 1);
      if (k.startsWith('momentum.')) this.interp.momentumBuffers.set(name, f64(t));
      if (k.startsWith('exp_avg.')) this.interp.adamMoments.set(name, { m: f64(t), v: f64(state.get(`exp_avg_sq.${name}`)!) });
    }
    if (adam) this.interp.adamSteps = Number(adam.data[0]);
    this.step = Number(step.data[0]);
  }
}
