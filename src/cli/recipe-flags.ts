// gen train's recipe flags: augmentation, per-epoch validation, early stopping and
// the best checkpoint, parsed and checked together (they depend on each other).
import type { Command } from 'commander';
import { parseAugment, type AugmentOptions } from '../data/augment.js';
import type { EarlyStopOptions } from '../train/early-stop.js';
import { float32Flag, intFlag } from './flags.js';

export interface RecipeCli {
  augment?: string;
  val?: string;
  patience?: string;
  minDelta?: string;
  monitor?: string;
  saveBest?: string;
}

export interface Recipe {
  augment?: AugmentOptions;
  val?: number | 'val';
  earlyStop?: EarlyStopOptions;
  saveBest?: string;
}

export function recipeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--augment <list>',
      'augment the training batches: crop (random crop, padding 4), crop=<padding>, flip (horizontal, p 0.5); e.g. crop,flip',
    )
    .option(
      '--val <fraction|val>',
      "validate after every epoch on a fraction of each class held out of the training split, or on the data's val split",
    )
    .option('--patience <n>', 'early stopping: stop after n epochs without a better validation loss (see --monitor)')
    .option('--min-delta <x>', 'with --patience or --save-best: how much better an epoch must be to count as better (default 0)')
    .option('--monitor <loss|accuracy>', 'what --patience and --save-best watch: validation loss (default) or accuracy')
    .option('--save-best <ckpt.safetensors>', 'checkpoint of the best validation epoch (atomic), beside --save');
}

/** `--val 0.1` (held out of the training split) or `--val val` (the data's val split). */
export function valFlag(text: string): number | 'val' {
  if (text.trim() === 'val') return 'val';
  const want = `--val must be a fraction in (0, 1) held out of the training split, or 'val' (the data's val split), got '${text}'`;
  let f: number;
  try {
    f = float32Flag('val', text, { above: 0, max: 1 });
  } catch {
    throw new Error(want);
  }
  if (f >= 1) throw new Error(want);
  return f;
}

/** Every recipe flag checked before anything is built or read; flags that need --val say so. */
export function recipeFlags(o: RecipeCli): Recipe {
  const augment = o.augment === undefined ? undefined : parseAugment(o.augment);
  const val = o.val === undefined ? undefined : valFlag(o.val);
  const needsVal = [o.patience !== undefined && '--patience', o.saveBest !== undefined && '--save-best'].filter(Boolean);
  if (val === undefined && needsVal.length) throw new Error(`${needsVal.join(' and ')} need a validation set: add --val <fraction|val>`);
  if (o.monitor !== undefined && o.monitor !== 'loss' && o.monitor !== 'accuracy')
    throw new Error(`--monitor must be loss or accuracy, got '${o.monitor}'`);
  const patience = o.patience === undefined ? undefined : intFlag('patience', o.patience, { min: 1 });
  const minDelta = float32Flag('min-delta', o.minDelta ?? '0', { min: 0 });
  const watch = patience !== undefined || o.saveBest !== undefined;
  const idle = [o.minDelta !== undefined && '--min-delta', o.monitor !== undefined && '--monitor'].filter(Boolean);
  if (!watch && idle.length) throw new Error(`${idle.join(' and ')} apply to --patience or --save-best; give one of them`);
  const earlyStop: EarlyStopOptions | undefined = watch
    ? { patience, minDelta, monitor: (o.monitor ?? 'loss') as 'loss' | 'accuracy' }
    : undefined;
  return { augment, val, earlyStop, saveBest: o.saveBest };
}
