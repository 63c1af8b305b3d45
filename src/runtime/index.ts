// Loading a compiled model package (generated/<name>/) into Node.
//
//   const net = await load('generated/net');
//   net.trainStep(x, labels, 64, { lr: 1e-2 });
//
// Dropout seeds: a model has a base `seed` (default 0) and a step counter
// `step` (training steps taken). Training step s draws its dropout masks with
// hashUniform(stepSeed(seed, s), stream, index), stepSeed from src/train/rules.ts
// (C twin: tk::step_seed in tk_runtime.h; trainEpoch applies the same rule per
// step). A train-mode forward uses stepSeed(seed, step) without advancing step.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { addonPath, compilePackage, readManifest } from '../codegen/compile.js';
import { missingFlags } from '../codegen/isa.js';
import type { HostTensor } from '../graph/ir.js';
import { stepSeed, type EpochStepOptions, type StepOptions } from '../train/rules.js';
import type { LossOptions } from '../ops/loss.js';

/** One optimizer step's options (src/train/rules.ts). */
export type SgdOptions = StepOptions;

export interface StateTensor {
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

export interface PackageInfo {
  model: string;
  name: string;
  prefix: string;
  inputShape: number[];
  classes: number;
  maxBatch: number;
  state: { name: string; kind: 'param' | 'buffer'; dtype: 'F32' | 'I64'; shape: number[] }[];
  keys: Record<string, string>;
  /** gen build --taps */
  taps?: TapInfo[];
  /** built with input gradients */
  inputGrad?: boolean;
}

/** What the CPU and CUDA packages' Model classes share. */
export interface NativeModel {
  seed: number;
  step: number;
  lastCorrect?: number;
  readonly maxBatch: number;
  readonly training: boolean;
  train(mode?: boolean): this;
  eval(): this;
  stepSeed(step?: number): number;
  /** logits [batch, classes] of x [batch, C, H, W] */
  forward(x: Float32Array, batch: number, seed?: number): Float32Array;
  /** one SGD step; returns mean cross-entropy + penalties */
  trainStep(x: Float32Array, labels: Int32Array, batch: number, opts: SgdOptions): number;
  trainStepDetailed(
    x: Float32Array,
    labels: Int32Array,
    batch: number,
    opts: SgdOptions,
    seed?: number,
  ): { loss: number; lossCE: number; correct: number; logits: Float32Array };
  /** every step of an epoch in one native call; loss is the sum of step losses */
  trainEpoch(
    x: Float32Array,
    labels: Int32Array,
    n: number,
    batchSize: number,
    order: Uint32Array,
    opts: EpochStepOptions,
  ): { loss: number; correct: number; steps: number };
  /** trainEpoch's random crop (padding; 0: none) and flip from now on, fill the padding per channel (src/data/augment.ts); CUDA refuses any */
  setAugment(crop: number, flip: boolean, fill?: Float32Array | null): void;
  resetOptimizer(): void;
  /** 'step', 'momentum.<param>', 'exp_avg.<param>', 'exp_avg_sq.<param>', 'adam_step' (as the interpreter's training state) */
  trainingState(): Map<string, StateTensor>;
  loadTrainingState(state: Map<string, HostTensor | StateTensor>): void;
  stateDict(): Map<string, StateTensor>;
  loadStateDict(state: Map<string, HostTensor | StateTensor> | Record<string, HostTensor | StateTensor>): void;
  /** sets the given entries (state_dict keys or canonical names) */
  loadState(state: Map<string, HostTensor | StateTensor>): void;
  /** every parameter and buffer once, by canonical name */
  canonicalState(): Map<string, StateTensor>;
  grads(): Map<string, Float32Array>;
  /** d loss / d x of the last train step (packages built with input gradients) */
  inputGrad(): Float32Array;
  /** PyTorch's dropout multipliers by module path for the next train steps (null: back to the own masks) */
  replayDropout(masks: Map<string, Float32Array | Float64Array> | null, batch: number): void;
  /** frees the native model now (the GC would later); any later call throws */
  dispose(): void;
  [Symbol.dispose](): void;
  readonly disposed: boolean;
  /** heap bytes of the native model, reported to the GC; 0 once disposed */
  readonly nativeBytes: number;
  /** d loss / d x without a step, no state changes (packages built with input gradients); eval mode unless train */
  inputGradient(
    x: Float32Array,
    labels: Int32Array,
    batch: number,
    o?: { train?: boolean; seed?: number; loss?: LossOptions },
  ): { grad: Float32Array; logits: Float32Array; loss: number };
  /** the values this package keeps readable after a forward (gen build --taps) */
  readonly taps: readonly TapInfo[];
  /** whether inputGradient() works (built with input gradients) */
  readonly hasInputGradient: boolean;
  /** a forward in the current mode, then every tap's value by tap name */
  activations(x: Float32Array, batch: number, seed?: number): Map<string, { shape: number[]; data: Float32Array }>;
}

/** A tap of a package: the name it was asked by, its graph node, its per-sample shape. */
export interface TapInfo {
  name: string;
  node: number;
  shape: number[];
}

/** A model compiled for the CPU (generated/<name>/). */
export interface CompiledModel extends NativeModel {
  numThreads: number;
}

/** A model compiled for CUDA (generated/<name>/cuda/): state and resident data on the GPU. */
export interface CudaModel extends NativeModel {
  /** name of the GPU, or of the CPU emulator */
  readonly device: string;
  readonly emulator: boolean;
  /** replay training steps from CUDA graphs (default on) */
  graphs: boolean;
  /** uploads x and labels now; trainEpoch re-uploads only another array, n or sampled contents, so call this after an in-place change */
  setDataset(x: Float32Array, labels: Int32Array, n?: number): void;
}

export interface LoadOptions {
  maxBatch?: number;
  seed?: number;
  /** compile when the build is missing or was made for another CPU (default true) */
  rebuild?: boolean;
  /** start from the initial weights saved by gen build (default true); false: all zeros, to load a state next */
  init?: boolean;
}

/** The dropout seed of training step `step` (the one rule of src/train/rules.ts). */
export { stepSeed };

export function packageInfo(dir: string): PackageInfo {
  const f = path.join(dir, 'tensorkiln.json');
  if (!fs.existsSync(f)) throw new Error(`${dir} is not a tensorkiln package (no tensorkiln.json); create it with gen build`);
  return JSON.parse(fs.readFileSync(f, 'utf8')) as PackageInfo;
}

/** Loads generated/<name>/, compiling it first if its build is missing or made for a CPU this one is not. */
export async function load(dir: string, o: LoadOptions = {}): Promise<CompiledModel> {
  const abs = path.resolve(dir);
  const info = packageInfo(abs);
  const manifest = readManifest(abs);
  const missing = manifest ? missingFlags(manifest.isa) : [];
  const stale = !manifest || !fs.existsSync(addonPath(abs, info.prefix)) || missing.length > 0;
  if (stale) {
    const why = !manifest
      ? 'it has no build'
      : missing.length
        ? `it was built for ${manifest.isa.march} and this CPU lacks ${missing.join(', ')}`
        : 'its addon is missing';
    if (o.rebuild === false) throw new Error(`cannot load ${dir}: ${why}; rebuild it with gen build`);
    compilePackage(abs, { key: '', model: info.model, name: info.name, prefix: info.prefix });
  }
  const pkg = (await import(pathToFileURL(path.join(abs, 'index.js')).href)) as {
    create(o: { maxBatch?: number; seed?: number; weights?: null }): CompiledModel;
  };
  // The package's own default: build/init.safetensors, an error naming it when missing.
  return pkg.create({ maxBatch: o.maxBatch, seed: o.seed, ...(o.init === false && { weights: null }) });
}
