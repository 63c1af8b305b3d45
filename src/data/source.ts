// `--data`: which reader, on which folder. `kind:dir` names the kind; a bare
// dir is detected from its files. No --data means the shipped CIFAR-2 sample,
// the book's workflow. Class subsets are asked for (`classes`), never implied.

import { existsSync } from 'node:fs';
import { SAMPLE_DIR, isCifarDir, loadCifar10, loadCifar2 } from './cifar.ts';
import { selectClasses, type ImageShape, type RawSplits } from './dataset.ts';
import { isImageFolder, loadImageFolder } from './folder.ts';
import { FASHION_MNIST_CLASSES, MNIST_CLASSES, isIdxDir, loadIdx } from './idx.ts';

export const DATA_KINDS = ['cifar10', 'cifar2', 'idx', 'mnist', 'fashion-mnist', 'folder'] as const;
export type DataKind = (typeof DATA_KINDS)[number];

export interface DataSpec {
  kind: DataKind;
  dir: string;
}

export const SAMPLE_SPEC: DataSpec = { kind: 'cifar2', dir: SAMPLE_DIR };

const isKind = (k: string): k is DataKind => (DATA_KINDS as readonly string[]).includes(k);

/** `kind:dir` or a folder whose kind is detected; undefined → the shipped sample. */
export function parseDataSpec(text: string | undefined): DataSpec {
  if (text === undefined) return SAMPLE_SPEC;
  const m = /^([a-z0-9-]+):(.+)$/.exec(text);
  if (m && isKind(m[1])) return { kind: m[1], dir: m[2] };
  if (m && !existsSync(text)) throw new Error(`--data ${text}: unknown data kind '${m[1]}'; kinds: ${DATA_KINDS.join(', ')}`);
  return { kind: detectKind(text), dir: text };
}

/** The kind of a data folder, from its files. */
export function detectKind(dir: string): DataKind {
  if (!existsSync(dir)) throw new Error(`data folder not found: ${dir}`);
  if (isCifarDir(dir)) return 'cifar10';
  if (isIdxDir(dir)) return 'idx';
  if (isImageFolder(dir)) return 'folder';
  throw new Error(
    `${dir}: cannot tell the kind of data: no CIFAR-10 batches (data_batch_1.bin), no IDX files (train-images-idx3-ubyte[.gz]) ` +
      `and no class folders of PNG/JPEG images; name the kind as --data <kind>:${dir} (kinds: ${DATA_KINDS.join(', ')})`,
  );
}

export interface ReadOptions {
  /** the model's input [C, H, W]: image folders are resized to it (required for them) */
  input?: ImageShape;
  /** keep only these classes, relabelled 0.. in this order */
  classes?: readonly string[];
  /** image folders without train/ and val/: the fraction of each class held out (default 0.2) */
  valSplit?: number;
}

type Reader = (dir: string, o: ReadOptions) => RawSplits;

const readers: Record<DataKind, Reader> = {
  cifar10: (dir) => loadCifar10(dir),
  cifar2: (dir) => loadCifar2(dir),
  idx: (dir) => loadIdx(dir),
  mnist: (dir) => loadIdx(dir, MNIST_CLASSES, 'mnist'),
  'fashion-mnist': (dir) => loadIdx(dir, FASHION_MNIST_CLASSES, 'fashion-mnist'),
  folder: (dir, o) => {
    if (!o.input) throw new Error(`folder:${dir}: an image folder needs the model's input shape to resize to`);
    return loadImageFolder(dir, o.input, o.valSplit);
  },
};

/** Reads a data spec's two splits as bytes, with the chosen classes. */
export function readData(spec: DataSpec | string | undefined, o: ReadOptions): RawSplits {
  const s = typeof spec === 'object' ? spec : parseDataSpec(spec);
  if (!existsSync(s.dir)) throw new Error(`data folder not found: ${s.dir}`);
  if (o.valSplit !== undefined && s.kind !== 'folder')
    throw new Error(`a validation split applies to image folders only, not ${s.kind} data`);
  const splits = readers[s.kind](s.dir, o);
  return o.classes ? selectClasses(splits, o.classes) : splits;
}

/** One line saying what was read: source, classes, split sizes, image shape. */
export function describeData(d: {
  source: string;
  classes: readonly string[];
  train: { n: number };
  val: { n: number };
  shape: readonly number[];
}): string {
  const names = d.classes.length > 12 ? [...d.classes.slice(0, 12), '…'] : d.classes;
  const hint = d.source.startsWith('idx:') ? `; classes are label numbers (mnist:<dir> or fashion-mnist:<dir> names them)` : '';
  return `Data ${d.source}: ${d.classes.length} classes (${names.join(', ')}), ${d.train.n} train / ${d.val.n} val images of ${d.shape.join('x')}${hint}`;
}
