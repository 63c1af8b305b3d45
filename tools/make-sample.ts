// Builds the CIFAR-2 sample shipped in data/cifar2/ from a CIFAR-10 binary
// directory. Reproducible: the selection is a fixed rule and brotli output
// is deterministic for fixed parameters.
//
//   npx tsx tools/make-sample.ts [--src DIR] [--out DIR] [--train-per-class K] [--test-per-class K]
//
// Rule: from each source batch, the first K airplanes and the first K birds
// in file order, kept in that order (other classes dropped); K is per batch
// for data_batch_1..5 and for test_batch. Each file is written in the same
// 3073-byte record layout, brotli-compressed, as <name>.br.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import {
  COMPRESSED_SUFFIX,
  IMAGE_BYTES,
  RECORD_BYTES,
  SAMPLE_DIR,
  TEST_FILE,
  TRAIN_FILES,
  readCifarBatch,
  type RawImages,
} from '../src/data/cifar.ts';

const { values } = parseArgs({
  options: {
    src: { type: 'string', default: '/work/shared/data/cifar10' },
    out: { type: 'string', default: SAMPLE_DIR },
    'train-per-class': { type: 'string', default: '800' },
    'test-per-class': { type: 'string', default: '1000' },
  },
});

/** Record indices of the first `k` of each of labels 0 and 2, in file order. */
function select(labels: Int32Array, k: number): number[] {
  const taken = new Map([
    [0, 0],
    [2, 0],
  ]);
  const keep: number[] = [];
  labels.forEach((label, i) => {
    const t = taken.get(label);
    if (t !== undefined && t < k) {
      taken.set(label, t + 1);
      keep.push(i);
    }
  });
  return keep;
}

function records(ds: RawImages, keep: number[]): Uint8Array {
  const out = new Uint8Array(keep.length * RECORD_BYTES);
  keep.forEach((src, dst) => {
    out[dst * RECORD_BYTES] = ds.labels[src];
    out.set(ds.images.subarray(src * IMAGE_BYTES, (src + 1) * IMAGE_BYTES), dst * RECORD_BYTES + 1);
  });
  return out;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const out = values.out as string;
mkdirSync(out, { recursive: true });
let total = 0;
for (const name of [...TRAIN_FILES, TEST_FILE]) {
  const k = Number(name === TEST_FILE ? values['test-per-class'] : values['train-per-class']);
  const ds = readCifarBatch(join(values.src as string, name));
  const keep = select(ds.labels, k);
  const raw = records(ds, keep);
  const packed = brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  });
  if (Buffer.compare(brotliDecompressSync(packed), raw) !== 0) throw new Error(`${name}: round trip failed`);
  writeFileSync(join(out, name + COMPRESSED_SUFFIX), packed);
  total += packed.length;
  const planes = keep.filter((i) => ds.labels[i] === 0).length;
  console.log(
    `${name}${COMPRESSED_SUFFIX}: ${keep.length} records (${planes} airplanes, ${keep.length - planes} birds), ` +
      `${raw.length} -> ${packed.length} bytes, sha256 of records ${sha256(raw)}`,
  );
}
console.log(`total compressed: ${total} bytes`);
