// A compiled model as the training loop's TrainableModel (src/train/model.ts).
import type { Graph, HostTensor } from '../graph/ir.js';
import type { EpochResult, TrainableModel } from '../train/model.js';
import type { StepOptions } from '../train/rules.js';
import type { NativeModel } from './index.js';

export class CompiledTrainable implements TrainableModel {
  constructor(
    readonly graph: Graph,
    readonly model: NativeModel,
  ) {}

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

  /** the whole epoch in one native call */
  trainEpoch(x: Float32Array, labels: Int32Array, order: Uint32Array, batchSize: number, opts: StepOptions): EpochResult {
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
