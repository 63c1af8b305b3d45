// A loaded compiled model (CPU or CUDA package) behind src/check's Backend
// interface. Kept apart from the build code, so a bundled script can drive
// prebuilt packages without the code generator (tools/gpu-node.ts).
import type { Backend, OptimizerTensor, FloatArray, ForwardOptions, InputGradient, ProbeOptions, StepResult } from '../check/backend.js';
import type { Tap } from '../graph/taps.js';
import { graphHash } from '../graph/hash.js';
import type { Graph, HostTensor } from '../graph/ir.js';
import type { StepOptions } from '../train/rules.js';
import type { NativeModel } from './index.js';

export class CompiledBackend implements Backend {
  constructor(
    readonly graph: Graph,
    readonly model: NativeModel,
    /** the package computes the input gradient in train steps */
    readonly inputGrad = false,
    /** the values its package keeps readable */
    readonly taps: readonly Tap[] = [],
  ) {}

  activations(x: FloatArray, batch: number, nodes: number[], opts: ForwardOptions): Float32Array[] {
    return nativeActivations(this.model, this.graph, f32(x), batch, nodes, opts);
  }

  inputGradient(x: FloatArray, labels: ArrayLike<number>, batch: number, opts: ProbeOptions): InputGradient {
    // PyTorch's masks, when given, stand for the next train-mode forward (the step keeps them)
    if (opts.train && this.pendingMasks) this.model.replayDropout(this.pendingMasks, batch);
    return this.model.inputGradient(f32(x), Int32Array.from(labels), batch, { train: opts.train, seed: opts.seed ?? 0, loss: opts.loss });
  }

  loadState(state: Map<string, HostTensor>): void {
    this.model.loadState(state);
  }

  forward(x: FloatArray, batch: number, opts: ForwardOptions): Float32Array {
    this.model.train(opts.train);
    return this.model.forward(x instanceof Float32Array ? x : Float32Array.from(x), batch, opts.seed ?? 0);
  }

  trainStep(x: FloatArray, labels: ArrayLike<number>, batch: number, step: StepOptions, seed = 0): StepResult {
    if (this.pendingMasks) this.model.replayDropout(this.pendingMasks, batch);
    const r = this.model.trainStepDetailed(
      x instanceof Float32Array ? x : Float32Array.from(x),
      Int32Array.from(labels),
      batch,
      step,
      seed,
    );
    const inputGrad = this.inputGrad ? this.model.inputGrad() : undefined;
    return { loss: r.loss, lossCE: r.lossCE, logits: r.logits, grads: this.model.grads(), ...(inputGrad && { inputGrad }) };
  }

  replayDropout(masks: Map<string, FloatArray>): void {
    this.pendingMasks = masks;
  }

  /** set at the next train step, whose batch sizes them */
  private pendingMasks: Map<string, FloatArray> | null = null;

  stateDict(): Map<string, HostTensor> {
    return this.model.canonicalState() as Map<string, HostTensor>;
  }

  optimizerState(): Map<string, OptimizerTensor> {
    return torchOptimizerState(this.model.trainingState());
  }
}

/** A training state's optimizer entries under torch.optim's names (`<param>.momentum_buffer`, `.exp_avg`, `.exp_avg_sq`, `.step`). */
export function torchOptimizerState(
  state: Map<string, { shape: number[]; data: Float32Array | BigInt64Array }>,
): Map<string, OptimizerTensor> {
  const out = new Map<string, OptimizerTensor>();
  const adam = state.get('adam_step');
  for (const [k, t] of state) {
    const dot = k.indexOf('.');
    const slot = k.slice(0, dot);
    const name = k.slice(dot + 1);
    if (slot === 'momentum') out.set(`${name}.momentum_buffer`, t);
    if (slot === 'exp_avg' || slot === 'exp_avg_sq') out.set(`${name}.${slot}`, t);
    if (slot === 'exp_avg' && adam) out.set(`${name}.step`, adam);
  }
  return out;
}

const f32 = (x: FloatArray): Float32Array => (x instanceof Float32Array ? x : Float32Array.from(x));

/**
 * The values of `nodes` after a forward of x, read from the package's taps. Train mode
 * updates BatchNorm buffers, so they are put back: a look inside changes no state.
 */
export function nativeActivations(
  model: NativeModel,
  graph: Graph,
  x: Float32Array,
  batch: number,
  nodes: number[],
  opts: ForwardOptions,
): Float32Array[] {
  const names = nodes.map((n) => {
    const t = model.taps.find((k) => k.node === n);
    if (!t)
      throw new Error(
        `internal: the package keeps no tap of node ${n} (it has ${model.taps.map((k) => `#${k.node}`).join(', ') || 'none'})`,
      );
    return t.name;
  });
  const isBuffer = new Set(graph.state.filter((s) => s.kind === 'buffer').map((s) => s.name));
  const buffers = opts.train ? [...model.canonicalState()].filter(([name]) => isBuffer.has(name)) : [];
  const was = model.training;
  try {
    const got = model.train(opts.train).activations(x, batch, opts.seed ?? 0);
    return names.map((n) => got.get(n)!.data);
  } finally {
    model.train(was);
    if (buffers.length) model.loadState(new Map(buffers));
  }
}

/** A package name for a graph (API and gen check): the model's lowercased name and a hash of its computation. */
export function packageNameOf(graph: Graph): string {
  return `${graph.name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}_${graphHash(graph).slice(0, 10)}`;
}
