// Reader for the CIFAR-10 binary layout ("cifar-10-batches-bin"): a plain
// sequence of 3073-byte records, a label byte then a 32x32 image as three
// 1024-byte planes (R, G, B), each row by row. The pixels are kept as bytes
// (CHW, like torchvision's tensors before ToTensor) so that a whole split
// costs 3 KB per image; transforms.ts turns them into floats.
//
// Files may also be brotli-compressed (`<name>.br`, as in the shipped sample
// under data/); they decompress to exactly the same bytes.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import { concatRaw, selectLabels, type ImageShape, type RawImages, type RawSplits } from './dataset.ts';
import { readRegularFile } from '../util/fs.js';

/** A batch file (50 MB for the largest CIFAR-10 one) is read whole; far more is not CIFAR. */
const MAX_BATCH_FILE_BYTES = 1 << 30;

export type { RawImages, RawSplits } from './dataset.ts';

export const CIFAR_SHAPE: ImageShape = [3, 32, 32];
export const IMAGE_BYTES = 3 * 32 * 32;
export const RECORD_BYTES = 1 + IMAGE_BYTES;
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
/** The class names file of the binary release: line i names label i. */
export const META_FILE = 'batches.meta.txt';

export const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const TEST_FILE = 'test_batch.bin';
/** Suffix of the brotli-compressed variant of a batch file. */
export const COMPRESSED_SUFFIX = '.br';

const LAYOUT = 'CIFAR-10 binary batch: 3073-byte records, a label byte 0-9 then 1024 R, 1024 G, 1024 B bytes';

/** Reads one batch file; a name ending in `.br` is brotli-decompressed first. */
export function readCifarBatch(path: string): RawImages {
  if (!existsSync(path)) throw new Error(`CIFAR batch file not found: ${path} (expected a ${LAYOUT})`);
  // a FIFO or device named like a batch is refused, not read (it would block)
  let bytes: Uint8Array = readRegularFile(path, 'CIFAR batch file', MAX_BATCH_FILE_BYTES);
  if (path.endsWith(COMPRESSED_SUFFIX)) {
    try {
      bytes = brotliDecompressSync(bytes, { maxOutputLength: MAX_BATCH_FILE_BYTES });
    } catch (e) {
      throw new Error(`CIFAR batch file ${path} is not valid brotli data: ${(e as Error).message}`, { cause: e });
    }
  }
  return readCifarBytes(bytes, path);
}

/** Splits raw record bytes into images and labels; `source` names them in errors. */
export function readCifarBytes(bytes: Uint8Array, source: string): RawImages {
  if (bytes.length % RECORD_BYTES !== 0) {
    throw new Error(
      `${source}: size ${bytes.length} bytes is not a multiple of ${RECORD_BYTES} ` +
        `(${Math.floor(bytes.length / RECORD_BYTES)} whole records and ${bytes.length % RECORD_BYTES} bytes over); ` +
        `truncated or not a ${LAYOUT}`,
    );
  }
  const n = bytes.length / RECORD_BYTES;
  const images = new Uint8Array(n * IMAGE_BYTES);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * RECORD_BYTES;
    const label = bytes[at];
    if (label > 9) throw new Error(`${source}: record ${i} (byte offset ${at}) has label ${label}, expected 0-9`);
    labels[i] = label;
    images.set(bytes.subarray(at + 1, at + RECORD_BYTES), i * IMAGE_BYTES);
  }
  return { images, labels, shape: [...CIFAR_SHAPE] };
}

/** The path of `name` in `dir`, plain or compressed; undefined when neither exists. */
function findBatch(dir: string, name: string): string | undefined {
  for (const candidate of [name, name + COMPRESSED_SUFFIX]) {
    const path = join(dir, candidate);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** True when `dir` holds the first CIFAR-10 training batch (plain or compressed). */
export function isCifarDir(dir: string): boolean {
  return findBatch(dir, TRAIN_FILES[0]) !== undefined;
}

/** The ten class names: batches.meta.txt when present (blank lines ignored), else CIFAR-10's. */
export function readCifarClasses(dir: string): string[] {
  const file = join(dir, META_FILE);
  if (!existsSync(file)) return [...CIFAR10_CLASSES];
  const names = readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (names.length !== 10) throw new Error(`${file}: ${names.length} class names, expected 10 (one per line, line i names label i)`);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`${file}: class name '${twice}' appears twice`);
  return names;
}

/**
 * All ten classes: data_batch_1..5 as the training split and test_batch as the
 * validation split (the book validates on the CIFAR-10 test set).
 */
export function loadCifar10(dir: string): RawSplits {
  const names = [...TRAIN_FILES, TEST_FILE];
  const paths = names.map((name) => findBatch(dir, name));
  const missing = names.filter((_, i) => paths[i] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `CIFAR-10 directory ${dir} lacks ${missing.join(', ')} ` +
        `(each may also be brotli-compressed as <name>${COMPRESSED_SUFFIX}); ` +
        `expected the binary version, cifar-10-batches-bin`,
    );
  }
  const classes = readCifarClasses(dir);
  const batches = paths.map((p) => readCifarBatch(p as string));
  return { train: concatRaw(batches.slice(0, TRAIN_FILES.length)), val: batches[TRAIN_FILES.length], classes, source: `cifar10:${dir}` };
}

/** The book's `label_map = {0: 0, 2: 1}`: airplane -> 0, bird -> 1. */
export const CIFAR2_LABELS = [0, 2] as const;

/** Keeps airplanes and birds, in their order, relabelled 0 and 1. */
export function cifar2(ds: RawImages): RawImages {
  return selectLabels(ds, CIFAR2_LABELS);
}

/** The sample shipped with the repository (see data/README.md). */
export const SAMPLE_DIR = fileURLToPath(new URL('../../data/cifar2', import.meta.url));

/** CIFAR-2 (airplanes 0, birds 1) from a CIFAR-10 directory, or the shipped sample when none is given. */
export function loadCifar2(dir?: string): RawSplits {
  const ten = loadCifar10(dir ?? SAMPLE_DIR);
  return {
    train: cifar2(ten.train),
    val: cifar2(ten.val),
    classes: CIFAR2_LABELS.map((l) => ten.classes[l]),
    source: `cifar2:${dir ?? SAMPLE_DIR}`,
  };
}

/** CIFAR-2 from the shipped sample. */
export function loadSample(): RawSplits {
  return loadCifar2(SAMPLE_DIR);
}
