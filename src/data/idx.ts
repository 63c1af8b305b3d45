// Reader for the IDX files of MNIST and Fashion-MNIST (LeCun's format): a
// 4-byte magic (0, 0, element type, number of dimensions), one big-endian
// uint32 per dimension, then the elements row-major. Images are unsigned
// bytes [N, H, W], labels unsigned bytes [N]. Files may be gzip-compressed
// (as distributed), detected from their first bytes.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readRegularFile } from '../util/fs.js';
import { checkLabels, shapeText, type RawImages, type RawSplits } from './dataset.ts';

/** torchvision's FashionMNIST.classes. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

const TYPES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};
const SIZES: Record<number, number> = { 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 };

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses IDX bytes holding unsigned bytes; `source` names the file in errors. */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !(bytes[2] in TYPES))
    throw new Error(`${source}: not an IDX file (expected a magic 00 00 <type> <dims>; first bytes: ${hex(bytes)})`);
  if (bytes[2] !== 0x08) throw new Error(`${source}: IDX elements are ${TYPES[bytes[2]]}s; only unsigned bytes (type 0x08) are supported`);
  const nd = bytes[3];
  const header = 4 + 4 * nd;
  if (nd === 0 || bytes.length < header) throw new Error(`${source}: truncated IDX header (${bytes.length} bytes for ${nd} dimensions)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: nd }, (_, i) => view.getUint32(4 + 4 * i, false));
  const expected = header + dims.reduce((a, b) => a * b, 1) * SIZES[0x08];
  if (bytes.length !== expected) {
    const how = bytes.length < expected ? 'truncated' : `${bytes.length - expected} bytes too many`;
    throw new Error(`${source}: ${how}: dimensions [${dims.join(', ')}] need ${expected} bytes, the file has ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(header) };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ') || 'none, empty file';
}

/** An IDX file (the 60,000 MNIST images are 47 MB) is read whole; far more is not one. */
const MAX_IDX_BYTES = 1 << 30;

/** Reads an IDX file, gunzipping it first when it starts with gzip's magic. A FIFO or device is refused, not read. */
export function readIdx(path: string): IdxArray {
  return idxFromFile(readRegularFile(path, 'IDX file', MAX_IDX_BYTES), path);
}

/** The bytes of an IDX file as read (gzipped or not); they inflate to at most 1 GiB. */
export function idxFromFile(file: Uint8Array, source: string): IdxArray {
  let bytes = file;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_IDX_BYTES });
    } catch (e) {
      throw new Error(`${source}: corrupt gzip data: ${(e as Error).message}`, { cause: e });
    }
  }
  return parseIdx(bytes, source);
}

/** Images [N, H, W] and labels [N] of one split, as single-channel images. */
export function readIdxSplit(imagesFile: string, labelsFile: string): RawImages {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dims.length !== 3) throw new Error(`${imagesFile}: images must be [N, H, W], got [${images.dims.join(', ')}]`);
  if (labels.dims.length !== 1) throw new Error(`${labelsFile}: labels must be [N], got [${labels.dims.join(', ')}]`);
  if (images.dims[0] !== labels.dims[0])
    throw new Error(`${imagesFile} holds ${images.dims[0]} images but ${labelsFile} ${labels.dims[0]} labels`);
  return { images: images.data, labels: Int32Array.from(labels.data), shape: [1, images.dims[1], images.dims[2]] };
}

const SPLITS = { train: 'train', val: 't10k' } as const;

/** `<split>-<what>-idx<n>-ubyte`, also with a dot before idx (some copies) and/or `.gz`. */
function findIdx(dir: string, split: string, what: 'images' | 'labels'): string | undefined {
  const n = what === 'images' ? 3 : 1;
  for (const sep of ['-', '.'])
    for (const gz of ['', '.gz']) {
      const path = join(dir, `${split}-${what}${sep}idx${n}-ubyte${gz}`);
      if (existsSync(path)) return path;
    }
  return undefined;
}

export function isIdxDir(dir: string): boolean {
  return findIdx(dir, SPLITS.train, 'images') !== undefined;
}

/**
 * train-* as the training split, t10k-* as the validation split. Class names:
 * the given ones (whose count bounds the labels), else the label values
 * 0..max over the training split.
 */
export function loadIdx(dir: string, classes?: readonly string[], kind = 'idx'): RawSplits {
  const files = Object.values(SPLITS).flatMap((split) => (['images', 'labels'] as const).map((what) => ({ split, what })));
  const paths = files.map(({ split, what }) => findIdx(dir, split, what));
  const missing = files
    .filter((_, i) => paths[i] === undefined)
    .map(({ split, what }) => `${split}-${what}-idx${what === 'images' ? 3 : 1}-ubyte`);
  if (missing.length) throw new Error(`IDX directory ${dir} lacks ${missing.join(', ')} (each may be gzip-compressed, <name>.gz)`);
  const [ti, tl, vi, vl] = paths as string[];
  const train = readIdxSplit(ti, tl);
  const val = readIdxSplit(vi, vl);
  if (shapeText(train.shape) !== shapeText(val.shape))
    throw new Error(`mixed image sizes: ${ti} holds ${shapeText(train.shape)} images, ${vi} ${shapeText(val.shape)}`);
  const names = classes ? [...classes] : Array.from({ length: train.labels.reduce((m, l) => Math.max(m, l), 0) + 1 }, (_, i) => String(i));
  checkLabels(train.labels, names.length, tl);
  checkLabels(val.labels, names.length, vl);
  return { train, val, classes: names, source: `${kind}:${dir}` };
}
