// Accuracy, per-class accuracy and the confusion matrix of a model on a dataset.
import type { Dataset } from '../data/loader.js';
import { accuracy, predictLabels } from '../train/loop.js';
import type { TrainableModel } from '../train/model.js';
import { checkFits, type ImageData } from './data.js';

export interface ClassReport {
  className: string;
  /** images of this class in the split */
  n: number;
  /** fraction of them predicted as this class; null when there are none */
  accuracy: number | null;
}

export interface SplitReport {
  n: number;
  accuracy: number;
  perClass: ClassReport[];
  /** confusion[t][p]: images of true class t predicted as p */
  confusion: number[][];
}

export interface EvalReport {
  classes: string[];
  train: SplitReport;
  val: SplitReport;
}

/** Accuracy on both splits, as the book's validate(). */
export function evaluate(model: TrainableModel, data: ImageData): { train: number; val: number } {
  checkFits(model, data);
  return { train: accuracy(model, data.train), val: accuracy(model, data.val) };
}

/** confusion[t][p] over `classes` classes; a label or prediction outside 0..classes-1 is an error. */
export function confusionMatrix(labels: ArrayLike<number>, predicted: ArrayLike<number>, classes: number): number[][] {
  if (labels.length !== predicted.length) throw new Error(`confusionMatrix: ${labels.length} labels but ${predicted.length} predictions`);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const [t, p] = [labels[i], predicted[i]];
    if (!(t >= 0 && t < classes && p >= 0 && p < classes))
      throw new Error(`confusionMatrix: image ${i} has label ${t} and prediction ${p}, not both in 0-${classes - 1}`);
    m[t][p]++;
  }
  return m;
}

/** A split's accuracy, per-class accuracy and confusion matrix from its labels and predictions. */
export function splitReport(labels: ArrayLike<number>, predicted: ArrayLike<number>, classes: readonly string[]): SplitReport {
  const confusion = confusionMatrix(labels, predicted, classes.length);
  const correct = confusion.reduce((s, row, t) => s + row[t], 0);
  const perClass = classes.map((className, t) => {
    const n = confusion[t].reduce((a, b) => a + b, 0);
    return { className, n, accuracy: n ? confusion[t][t] / n : null };
  });
  return { n: labels.length, accuracy: labels.length ? correct / labels.length : 0, perClass, confusion };
}

function report(model: TrainableModel, ds: Dataset, classes: readonly string[]): SplitReport {
  return splitReport(ds.y, predictLabels(model, ds), classes);
}

/** evaluate() with per-class accuracy and confusion matrices. */
export function evaluateReport(model: TrainableModel, data: ImageData): EvalReport {
  checkFits(model, data);
  return { classes: [...data.classes], train: report(model, data.train, data.classes), val: report(model, data.val, data.classes) };
}
