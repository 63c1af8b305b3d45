// Early stopping and the best epoch, on the validation loss or accuracy (Keras's
// EarlyStopping rule): an epoch improves when it beats the best so far by more
// than minDelta; training stops after `patience` epochs in a row that did not.
// The best epoch is the last that improved: what --save-best keeps.
import type { EpochStats } from './loop.js';

export type Monitor = 'loss' | 'accuracy';

export interface EarlyStopOptions {
  /** epochs without improvement before stopping (undefined: never stop, only track the best) */
  patience?: number;
  /** how much better than the best an epoch must be to count (default 0) */
  minDelta?: number;
  /** validation loss (lower is better, the default) or accuracy (higher is better) */
  monitor?: Monitor;
}

/** What a checkpoint keeps so that a resumed run stops where an uninterrupted one would. */
export interface EarlyStopState {
  best: number | null;
  bestEpoch: number;
  /** epochs since the best */
  wait: number;
}

export function checkEarlyStop(o: EarlyStopOptions): void {
  if (o.patience !== undefined && (!Number.isInteger(o.patience) || o.patience < 1))
    throw new Error(`patience must be a positive integer, got ${o.patience}`);
  if (o.minDelta !== undefined && !(Number.isFinite(o.minDelta) && o.minDelta >= 0))
    throw new Error(`minDelta must be a non-negative number, got ${o.minDelta}`);
  if (o.monitor !== undefined && o.monitor !== 'loss' && o.monitor !== 'accuracy')
    throw new Error(`monitor must be 'loss' or 'accuracy', got '${String(o.monitor)}'`);
}

export class EarlyStop {
  state: EarlyStopState;

  constructor(
    readonly o: EarlyStopOptions,
    state?: EarlyStopState,
  ) {
    checkEarlyStop(o);
    this.state = state ? { ...state } : { best: null, bestEpoch: 0, wait: 0 };
  }

  /** The monitored value of an epoch's stats; an epoch without validation is an error. */
  value(s: EpochStats): number {
    const v = this.o.monitor === 'accuracy' ? s.valAccuracy : s.valLoss;
    if (v === undefined) throw new Error('early stopping and the best checkpoint need a validation set (val)');
    return v;
  }

  /** Records an epoch: whether it is the new best, and whether training should stop after it. */
  update(epoch: number, s: EpochStats): { improved: boolean; stop: boolean } {
    const v = this.value(s);
    const d = this.o.minDelta ?? 0;
    const { best } = this.state;
    const improved = best === null || (this.o.monitor === 'accuracy' ? v > best + d : v < best - d);
    this.state = improved ? { best: v, bestEpoch: epoch, wait: 0 } : { ...this.state, wait: this.state.wait + 1 };
    const stop = this.o.patience !== undefined && this.state.wait >= this.o.patience;
    return { improved, stop };
  }
}
