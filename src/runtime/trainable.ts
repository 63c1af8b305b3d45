// A compiled model as the training loop's TrainableModel (src/train/model.ts).
import type { Graph, HostTensor } from '../graph/ir.js';
import { resolveTaps, type Tap } from '../graph/taps.js';
import {
  batchOf,
  type Activation,
  type EpochResult,
  type InputGradientResult,
  type LookOptions,
  type TrainableModel,
} from '../train/model.js';
import type { EpochStepOptions, StepOptions } from '../train/rules.js';
import { augments, checkAugment, type Augment } from '../data/augment.js';
import { nativeActivations } from './compiled-backend.js';
import type { NativeModel } from './index.js';

/** What a look inside needs a package to keep: taps, input gradients. */
export interface Probes {
  taps?: Tap[];
  inputGrad?: boolean;
}

/** Opens the model's package built with those probes (a package of its own, cached on disk). */
export type ProbeOpener = (p: Probes) => Promise<NativeModel>;

export class CompiledTrainable implements TrainableModel {
  private readonly probes = new Map<string, Promise<NativeModel>>();

  constructor(
    readonly graph: Graph,
    readonly model: NativeModel,
    private readonly openProbe?: ProbeOpener,
  ) {}

  async activations(x: Float32Array, names: readonly (string | number)[], o: LookOptions = {}): Promise<Map<string, Activation>> {
    const taps = resolveTaps(this.graph, names);
    const batch = batchOf(this.graph, x, this.maxBatch);
    const m = await this.withProbes({ taps });
    const got = nativeActivations(
      m,
      this.graph,
      x,
      batch,
      taps.map((t) => t.node),
      this.look(o),
    );
    return new Map(taps.map((t, i) => [t.name, { node: t.node, shape: [batch, ...t.shape], data: got[i] }]));
  }

  async inputGradient(x: Float32Array, labels: Int32Array, o: LookOptions = {}): Promise<InputGradientResult> {
    const batch = batchOf(this.graph, x, this.maxBatch, labels);
    const m = await this.withProbes({ inputGrad: true });
    return m.inputGradient(x, labels, batch, { ...this.look(o), loss: o.loss });
  }

  private look(o: LookOptions): { train: boolean; seed: number } {
    return { train: !!o.train, seed: o.seed ?? this.model.stepSeed() };
  }

  /** This model when its package has the probes (gen build --taps), else the probe package, holding this model's state now. */
  private async withProbes(p: Probes): Promise<NativeModel> {
    const own = this.model;
    const tapsHere = (p.taps ?? []).every((t) => own.taps.some((k) => k.node === t.node));
    if (tapsHere && (!p.inputGrad || own.hasInputGradient)) return own;
    if (!this.openProbe)
      throw new Error(`${this.graph.name}: this compiled model cannot build a package to look inside (open it with openModule)`);
    const key = JSON.stringify({ taps: p.taps?.map((t) => t.node).sort((a, b) => a - b), ig: !!p.inputGrad });
    if (!this.probes.has(key)) {
      const nodes = [...new Set(p.taps?.map((t) => t.node))];
      const taps = nodes.map((n) => ({ name: `#${n}`, node: n, shape: [...this.graph.nodes[n].shape] }));
      this.probes.set(key, this.openProbe({ ...p, ...(p.taps && { taps }) }));
    }
    const m = await this.probes.get(key)!;
    m.loadState(own.canonicalState());
    return m;
  }

  get maxBatch(): number {
    return this.model.maxBatch;
  }

  get device(): string | undefined {
    return 'device' in this.model ? String(this.model.device) : undefined;
  }

  train(): void {
    this.model.train();
  }

  eval(): void {
    this.model.eval();
  }

  forward(x: Float32Array, batch: number): Float32Array {
    return this.model.forward(x, batch);
  }

  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: StepOptions): number {
    return this.model.trainStep(x, labels, batch, opts);
  }

  /** whether the native model was last told to augment */
  private augmenting = false;

  /** the whole epoch in one native call */
  trainEpoch(
    x: Float32Array,
    labels: Int32Array,
    order: Uint32Array,
    batchSize: number,
    opts: EpochStepOptions,
    augment?: Augment,
  ): EpochResult {
    const on = augments(augment);
    if (on) checkAugment(augment, this.graph.inputShape);
    if (on || this.augmenting)
      this.model.setAugment(on ? augment.crop : 0, on && augment.flip, on ? Float32Array.from(augment.fill) : null);
    this.augmenting = on;
    const r = this.model.trainEpoch(x, labels, labels.length, batchSize, order, opts);
    return { lossSum: r.loss, batches: r.steps, correct: r.correct };
  }

  stateDict(): Map<string, HostTensor> {
    return this.model.stateDict() as Map<string, HostTensor>;
  }

  loadStateDict(state: Map<string, HostTensor>): void {
    this.model.loadStateDict(state);
  }

  trainingState(): Map<string, HostTensor> {
    return this.model.trainingState() as Map<string, HostTensor>;
  }

  loadTrainingState(state: Map<string, HostTensor>): void {
    this.model.loadTrainingState(state);
  }

  /** frees the native model now; any later call throws */
  dispose(): void {
    this.model.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
