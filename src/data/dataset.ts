// Labelled images as bytes, whatever their source (CIFAR batches, IDX files,
// an image folder): CHW, one byte per value, like torchvision's tensors before
// ToTensor, so that a split costs one byte per pixel; transforms.ts turns
// them into normalised floats.

/** Per-sample image shape [channels, height, width]. */
export type ImageShape = [channels: number, height: number, width: number];

export interface RawImages {
  /** N * C * H * W bytes, CHW per image */
  images: Uint8Array;
  /** one class index per image */
  labels: Int32Array;
  shape: ImageShape;
}

/** A dataset's two splits; label i names classes[i]. */
export interface RawSplits {
  train: RawImages;
  val: RawImages;
  classes: string[];
  /** where it came from, as `kind:dir` (for messages) */
  source: string;
  /** the fraction of each class held out as `val`, when the reader split one folder itself */
  valSplit?: number;
}

export const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
export const shapeText = (s: readonly number[]): string => s.join('x');

/** Whether item i of a list goes to validation when a fraction f is held out: every (1/f)-th, spread over the list. */
export const heldOut = (i: number, f: number): boolean => Math.floor((i + 1) * f) > Math.floor(i * f);

/** Joins image sets of one shape in order (e.g. the five CIFAR training batches). */
export function concatRaw(parts: RawImages[]): RawImages {
  const shape = parts[0].shape;
  for (const p of parts)
    if (shapeText(p.shape) !== shapeText(shape)) throw new Error(`mixed image sizes: ${shapeText(shape)} and ${shapeText(p.shape)}`);
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const per = numel(shape);
  const images = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * per);
    labels.set(p.labels, at);
    at += p.labels.length;
  }
  return { images, labels, shape };
}

/** Keeps the images whose label is in `keep`, in their order, relabelled by position in `keep`. */
export function selectLabels(raw: RawImages, keep: readonly number[]): RawImages {
  const to = new Map(keep.map((label, i) => [label, i]));
  const picked: number[] = [];
  for (let i = 0; i < raw.labels.length; i++) if (to.has(raw.labels[i])) picked.push(i);
  const per = numel(raw.shape);
  const images = new Uint8Array(picked.length * per);
  const labels = new Int32Array(picked.length);
  picked.forEach((src, dst) => {
    images.set(raw.images.subarray(src * per, (src + 1) * per), dst * per);
    labels[dst] = to.get(raw.labels[src]) as number;
  });
  return { images, labels, shape: raw.shape };
}

/** The given classes only, by name, relabelled 0.. in the order given (never a silent filter: unknown names fail). */
export function selectClasses(splits: RawSplits, names: readonly string[]): RawSplits {
  if (names.length === 0) throw new Error(`${splits.source}: no classes chosen`);
  const index = names.map((name) => {
    const i = splits.classes.indexOf(name);
    if (i < 0) throw new Error(`${splits.source} has no class '${name}'; its classes: ${splits.classes.join(', ')}`);
    return i;
  });
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`class '${twice}' is chosen twice`);
  return {
    ...splits,
    train: selectLabels(splits.train, index),
    val: selectLabels(splits.val, index),
    classes: [...names],
  };
}

/** Throws when a label is not a class index; `what` names the file or split. */
export function checkLabels(labels: ArrayLike<number>, classes: number, what: string): void {
  for (let i = 0; i < labels.length; i++)
    if (!(labels[i] >= 0 && labels[i] < classes))
      throw new Error(`${what}: image ${i} has label ${labels[i]}, out of range 0-${classes - 1} (${classes} classes)`);
}
