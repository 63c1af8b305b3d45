// The per-epoch log gen train writes beside its checkpoint (runs/net.safetensors →
// runs/net.log.jsonl): JSON lines, the run first, then one line per epoch, and the
// final accuracies once training ended. It is
// rewritten atomically after every epoch, and a resumed run keeps the epochs before it.
import fs from 'node:fs';
import { writeFileAtomic } from '../util/fs.js';

export interface RunInfo {
  /** the model class, and its constructor arguments when given (a design of gen compare) */
  model: string;
  args?: string;
  backend: string;
  seed: number;
  batchSize: number;
  epochs: number;
  data: string;
  images: number;
  /** the optimizer, its settings, the schedule and penalties (gen compare tells designs apart by them too) */
  options?: Record<string, number | string | boolean>;
}

export interface EpochRecord {
  epoch: number;
  /** mean training loss of the epoch */
  loss: number;
  /** train-mode accuracy over the epoch's steps */
  trainAccuracy: number;
  /** eval-mode accuracy on the validation split after the epoch (null: no validation images) */
  valAccuracy: number | null;
  lr: number;
  imagesPerSecond: number;
  /** seconds of this epoch's steps */
  seconds: number;
  /** eval-mode loss and accuracy on the run's validation set (gen train --val) after the epoch */
  validation?: { loss: number; accuracy: number; images: number };
}

export interface RunLog {
  run: RunInfo;
  epochs: EpochRecord[];
  /** eval-mode accuracies on both splits after the last epoch (the book's validate()), once training ended */
  final?: { trainAccuracy: number; valAccuracy: number | null; seconds: number };
}

/** runs/net.safetensors → runs/net.<what> */
export function besideCheckpoint(checkpoint: string, what: string): string {
  return checkpoint.replace(/(\.safetensors|\.pt|\.pth)?$/i, `.${what}`);
}

export function writeRunLog(file: string, log: RunLog): void {
  const lines = [JSON.stringify({ run: log.run }), ...log.epochs.map((e) => JSON.stringify(e))];
  if (log.final) lines.push(JSON.stringify({ final: log.final }));
  writeFileAtomic(file, lines.join('\n') + '\n');
}

/** Reads a log; a malformed line is an error naming the file and the line. */
export function readRunLog(file: string): RunLog {
  if (!fs.existsSync(file)) throw new Error(`training log not found: ${file}`);
  const lines = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const parsed = lines.map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`, { cause: e });
    }
  });
  const head = parsed[0]?.run as RunInfo | undefined;
  if (!head || typeof head.model !== 'string') throw new Error(`${file}: the first line must be {"run": {...}}; not a gen train log`);
  const last = parsed[parsed.length - 1];
  const final = parsed.length > 1 && last.final ? (last.final as RunLog['final']) : undefined;
  const epochs = parsed.slice(1, final ? -1 : undefined).map((e, i) => {
    for (const k of ['epoch', 'loss', 'trainAccuracy'])
      if (typeof e[k] !== 'number') throw new Error(`${file}:${i + 2}: '${k}' must be a number`);
    return e as unknown as EpochRecord;
  });
  return { run: head, epochs, ...(final && { final }) };
}
