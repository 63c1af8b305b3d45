// The data options of train, eval and predict, and what they print about the data.
import type { Command } from 'commander';
import { checkFits, loadData, modelInput, parseClasses, type ImageData, type LoadDataOptions } from '../api/data.js';
import type { EvalReport, SplitReport } from '../api/evaluate.js';
import type { WeightsInfo } from '../api/workflow.js';
import { DATA_KINDS, describeData } from '../data/source.js';
import type { TrainableModel } from '../train/model.js';

export interface DataCli {
  data?: string;
  classes?: string;
  valSplit?: string;
}

export function dataOptions(cmd: Command, what: string): Command {
  return cmd
    .option(
      '--data <[kind:]dir>',
      `${what}: ${DATA_KINDS.join(' | ')}, or a folder whose kind is detected (default: the shipped CIFAR-2 sample)`,
    )
    .option('--classes <names>', 'keep only these classes, relabelled in this order, e.g. airplane,bird')
    .option('--val-split <fraction>', 'image folders without train/ and val/: fraction of each class held out (default 0.2)');
}

function valSplit(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const f = Number(v);
  if (v.trim() === '' || !(f >= 0 && f < 1)) throw new Error(`--val-split must be a number in [0, 1), got '${v}'`);
  return f;
}

/** The weights a verb reads, with what they say of their data. */
export interface WeightsData {
  file: string;
  info: WeightsInfo;
}

/**
 * The --data set, read for this model's input and checked against it. Given
 * weights, their classes (by name; --classes may only repeat them), split and
 * normalisation are used, so eval sees the data as training saw it.
 */
export function dataFor(model: TrainableModel, o: DataCli, weights?: WeightsData): ImageData {
  const info = weights?.info ?? {};
  const read = readOptions(model, o, weights);
  let data: ImageData;
  try {
    data = loadData(o.data, read);
  } catch (e) {
    if (e instanceof Error && info.classes)
      e.message = `${weights?.file} holds a model of classes ${info.classes.join(', ')}: ${e.message}`;
    throw e;
  }
  checkFits(model, data);
  return data;
}

/** How to read the --data set for this model: its input shape, the weights' classes (--classes may only repeat them), split and normalisation. */
export function readOptions(model: TrainableModel, o: DataCli, weights?: WeightsData): LoadDataOptions {
  const info = weights?.info ?? {};
  const asked = parseClasses(o.classes);
  if (asked && info.classes && asked.join('\n') !== info.classes.join('\n'))
    throw new Error(`${weights?.file} was trained on classes ${info.classes.join(', ')}; --classes ${o.classes} differs`);
  return {
    input: modelInput(model),
    classes: info.classes ?? asked,
    valSplit: valSplit(o.valSplit) ?? info.valSplit,
    normalization: info.normalization,
  };
}

/** JSON with number arrays (confusion rows, probabilities) on one line each. */
export function json(v: unknown): string {
  return (
    JSON.stringify(v, null, 2).replace(
      /\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g,
      (_, xs: string) => `[${xs.split(/,\s*/).join(', ')}]`,
    ) + '\n'
  );
}

export function dataLine(d: ImageData): string {
  return describeData({ ...d, shape: d.train.shape }) + '\n';
}

const pad = (s: string, w: number) => s.padStart(w);

/** The book's two accuracy lines; an empty split has none to give. */
export function accuracyLines(train: { n: number; accuracy: number }, val: { n: number; accuracy: number }): string {
  const acc = (s: { n: number; accuracy: number }) => (s.n ? s.accuracy.toFixed(4) : 'none (no images)');
  return `Accuracy train: ${acc(train)}\nAccuracy val: ${acc(val)}\n`;
}

function confusionText(r: SplitReport, classes: string[]): string {
  const w = Math.max(6, ...classes.map((c) => c.length), ...r.confusion.flat().map((v) => String(v).length)) + 1;
  const head = '  ' + ''.padEnd(w) + classes.map((c) => pad(c, w)).join('');
  const rows = r.confusion.map((row, t) => '  ' + classes[t].padEnd(w) + row.map((v) => pad(String(v), w)).join(''));
  return [head, ...rows].join('\n');
}

/** The eval verb's text: the book's two accuracy lines, then per class and the confusion matrix of the validation split. */
export function reportText(r: EvalReport): string {
  const w = Math.max(...r.classes.map((c) => c.length));
  const perClass = r.val.perClass.map(
    (c) => `  ${c.className.padEnd(w)}  ${c.accuracy === null ? '   -  ' : c.accuracy.toFixed(4)}  (${c.n} images)`,
  );
  return [
    accuracyLines(r.train, r.val).trimEnd(),
    'Per-class accuracy (val):',
    ...perClass,
    'Confusion matrix (val; rows: true class, columns: predicted):',
    confusionText(r.val, r.classes),
    '',
  ].join('\n');
}
