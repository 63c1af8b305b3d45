// Reader for a folder of images, torchvision's ImageFolder: root/<class>/**/*.png|jpg,
// classes sorted by name (label i = i-th name), files sorted by path. Each
// image is resized and centre-cropped to the model's input (image-input.ts).
//
// Splits: root/train/<class> and root/val/<class> (or test/) when both exist;
// otherwise root/<class> with `valSplit` of every class held out, spread evenly
// over its sorted files, so train and eval see the same split without a seed.

import { readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { heldOut, numel, type ImageShape, type RawImages, type RawSplits } from './dataset.ts';
import { checkImageShape, loadImageBytes } from './image-input.ts';

const READABLE = new Set(['.png', '.jpg', '.jpeg']);
/** Other extensions torchvision's ImageFolder would load: refused by name rather than skipped. */
const UNREADABLE = new Set(['.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp', '.gif']);

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const isDir = (p: string): boolean => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => !n.startsWith('.') && isDir(join(dir, n)))
    .sort(byName);
}

/** Image files under `dir`, recursively, sorted by path; files of other types are ignored, as torchvision does. */
function imageFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort(byName)) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    if (isDir(path)) out.push(...imageFiles(path));
    else if (READABLE.has(extname(name).toLowerCase())) out.push(path);
    else if (UNREADABLE.has(extname(name).toLowerCase()))
      throw new Error(`${path}: only PNG and JPEG images can be read; convert it or remove it`);
  }
  return out;
}

/** The train/val folders when root is laid out that way. */
function splitDirs(root: string): { train: string; val: string } | undefined {
  const val = ['val', 'test'].map((n) => join(root, n)).find(isDir);
  return isDir(join(root, 'train')) && val ? { train: join(root, 'train'), val } : undefined;
}

/** True when `dir` looks like an image folder: class folders holding images (directly or under train/). */
export function isImageFolder(dir: string): boolean {
  const base = splitDirs(dir)?.train ?? dir;
  return isDir(base) && subdirs(base).some((c) => imageFiles(join(base, c)).length > 0);
}

interface Listing {
  classes: string[];
  files: string[][];
}

function list(dir: string): Listing {
  const classes = subdirs(dir);
  if (!classes.length) throw new Error(`image folder ${dir} has no class folders (expected <class>/<image>.png|jpg)`);
  const files = classes.map((c) => imageFiles(join(dir, c)));
  const empty = classes.filter((_, i) => !files[i].length);
  if (empty.length) throw new Error(`image folder ${dir}: no PNG or JPEG images in class folder(s) ${empty.join(', ')}`);
  return { classes, files };
}

function read(files: string[][], shape: ImageShape): RawImages {
  const all = files.flatMap((fs, label) => fs.map((file) => ({ file, label })));
  const per = numel(shape);
  const images = new Uint8Array(all.length * per);
  const labels = new Int32Array(all.length);
  all.forEach(({ file, label }, i) => {
    images.set(loadImageBytes(file, shape), i * per);
    labels[i] = label;
  });
  return { images, labels, shape: [...shape] };
}

export function loadImageFolder(root: string, shape: ImageShape, valSplit = 0.2): RawSplits {
  if (!isDir(root)) throw new Error(`image folder not found: ${root}`);
  checkImageShape(shape, 'the model');
  const source = `folder:${root}`;
  const dirs = splitDirs(root);
  if (dirs) {
    const train = list(dirs.train);
    const val = list(dirs.val);
    if (train.classes.join('\n') !== val.classes.join('\n'))
      throw new Error(
        `${source}: ${relative(root, dirs.train)}/ has classes ${train.classes.join(', ')} but ${relative(root, dirs.val)}/ has ${val.classes.join(', ')}`,
      );
    return { train: read(train.files, shape), val: read(val.files, shape), classes: train.classes, source };
  }
  if (!(valSplit >= 0 && valSplit < 1)) throw new Error(`validation split must be in [0, 1), got ${valSplit}`);
  const { classes, files } = list(root);
  const trainFiles = files.map((fs) => fs.filter((_, i) => !heldOut(i, valSplit)));
  const valFiles = files.map((fs) => fs.filter((_, i) => heldOut(i, valSplit)));
  return { train: read(trainFiles, shape), val: read(valFiles, shape), classes, source, valSplit };
}
