// One fuzz target per parser of untrusted bytes, each seeded by the real
// fixtures of test/fixtures (and the shipped data sample). A target passes an
// input when the parser returns, or throws an Error whose message starts with
// the input's name: that is a clear, located refusal. Anything else (a
// RangeError from a DataView, a stack overflow, a TypeError, a non-Error) is a
// crash; a hang (> 1 s) and a blow-up (> 1 GB) are caught by the runner.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, gzipSync } from 'node:zlib';
import { readCifarBytes, RECORD_BYTES } from '../src/data/cifar.js';
import { idxFromFile } from '../src/data/idx.js';
import { decodeImage, resizeCenterCrop } from '../src/io/image.js';
import { PyDict, PyGlobal, unpickle } from '../src/io/pickle.js';
import { f32, readSafetensors, saveSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { readTorchPt } from '../src/io/torch-pt.js';
import { isZip, readZipDirectory, readZipEntry } from '../src/io/zip.js';
import { CHECKPOINT_FORMAT, parseCheckpoint } from '../src/train/checkpoint.js';

export const SOURCE = 'fuzz-input';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const io = (name: string) => path.join(root, 'test/fixtures/io', name);
const read = (f: string) => new Uint8Array(fs.readFileSync(f));
/** Seeds larger than this are left out: mutating megabytes per input would fuzz slowly. */
const MAX_SEED_BYTES = 256 * 1024;

export interface Target {
  name: string;
  /** the real files it starts from */
  seeds(): Uint8Array[];
  /** parse one input; must return or throw a located Error */
  run(bytes: Uint8Array): void;
}

function files(dir: string, test: (f: string) => boolean): Uint8Array[] {
  return fs
    .readdirSync(dir)
    .filter(test)
    .sort()
    .map((f) => read(path.join(dir, f)))
    .filter((b) => b.length <= MAX_SEED_BYTES);
}

/** Every entry's bytes of the zip fixtures whose names match. */
function zipEntries(match: RegExp): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const z of files(io(''), (f) => f.endsWith('.pt')).filter(isZip)) {
    const entries = readZipDirectory(z);
    for (const e of entries.values()) if (match.test(e.name)) out.push(readZipEntry(z, e));
  }
  return out;
}

/** IDX bytes: magic 00 00 08 <rank>, big-endian dimensions, unsigned bytes. */
function idx(dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 0x08, dims.length]);
  dims.forEach((d, i) => new DataView(out.buffer).setUint32(4 + 4 * i, d, false));
  out.set(Array.from(data), 4 + 4 * dims.length);
  return out;
}

/** A small tensorkiln checkpoint: one tensor and every metadata field. */
function checkpointSeed(): Uint8Array {
  const tmp = path.join(os.tmpdir(), `tk-fuzz-seed-${process.pid}.safetensors`);
  try {
    saveSafetensors(tmp, new Map([['w', f32([2, 2], [1, 2, 3, 4])]]), {
      format: CHECKPOINT_FORMAT,
      model: 'Net',
      graph_hash: '0123456789abcdef',
      epoch: '3',
      normalization: JSON.stringify({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }),
      rng_state: '[1,2,3,4]',
      extra: '{"lr":0.01,"batchSize":64}',
    });
    return read(tmp);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

const META_KEYS = ['model', 'graph_hash', 'epoch', 'normalization', 'rng_state', 'extra'];

/** The pickle machine alone: a few globals callable (to reach REDUCE, BUILD), persistent ids allowed. */
const pickleOpts = {
  source: SOURCE,
  findGlobal: (module: string, name: string) => {
    if (module === 'collections' && name === 'OrderedDict') return new PyGlobal(module, name, () => new PyDict('OrderedDict'));
    if (module === 'torch._utils') return new PyGlobal(module, name, (args) => args[0]);
    throw new Error(`${SOURCE}: forbidden global '${module}.${name}'`);
  },
  persistentLoad: (pid: unknown) => pid,
};

export const targets: Target[] = [
  {
    name: 'safetensors',
    seeds: () => [
      ...files(io(''), (f) => f.endsWith('.safetensors')),
      ...files(path.join(root, 'test/fixtures/golden-extra/NetBatchNorm_steps20'), (f) => f.endsWith('.safetensors')),
    ],
    run: (b) => void readSafetensors(b, SOURCE),
  },
  {
    name: 'pickle',
    seeds: () => [read(io('evil_system.pkl')), ...zipEntries(/data\.pkl$/)],
    run: (b) => void unpickle(b, 0, pickleOpts),
  },
  {
    name: 'legacy-pt',
    seeds: () => files(io(''), (f) => f.endsWith('_legacy.pt')),
    run: (b) => void readTorchPt(b, SOURCE, { nonTensors: 'skip' }),
  },
  {
    name: 'zip-pt',
    seeds: () => files(io(''), (f) => f.endsWith('.pt')).filter(isZip),
    run: (b) => {
      // the archive layer alone, every entry, then the whole .pt reader
      if (isZip(b)) for (const e of readZipDirectory(b, SOURCE).values()) readZipEntry(b, e, SOURCE);
      readTorchPt(b, SOURCE, { nonTensors: 'skip' });
    },
  },
  {
    name: 'cifar',
    seeds: () => {
      const batch = brotliDecompressSync(fs.readFileSync(path.join(root, 'data/cifar2/test_batch.bin.br')));
      return [1, 3].map((n) => new Uint8Array(batch.subarray(0, n * RECORD_BYTES)));
    },
    run: (b) => void readCifarBytes(b, SOURCE),
  },
  {
    // IDX (MNIST, Fashion-MNIST), plain and gzipped as distributed: an image file and a label file made from the CIFAR sample
    name: 'idx',
    seeds: () => {
      const pixels = brotliDecompressSync(fs.readFileSync(path.join(root, 'data/cifar2/test_batch.bin.br'))).subarray(1, 1 + 2 * 28 * 28);
      const images = idx([2, 28, 28], pixels);
      return [images, idx([2], [3, 7]), new Uint8Array(gzipSync(images))];
    },
    run: (b) => void idxFromFile(b, SOURCE),
  },
  {
    name: 'image',
    seeds: () => [
      ...files(path.join(root, 'examples/images'), (f) => f.endsWith('.png')),
      ...files(path.join(root, 'test/fixtures/images'), (f) => /\.(png|jpe?g)$/.test(f)),
    ],
    run: (b) => void resizeCenterCrop(decodeImage(b, SOURCE)),
  },
  {
    name: 'checkpoint',
    seeds: () => [checkpointSeed()],
    run: (b) => void parseCheckpoint(b, SOURCE),
  },
  {
    // structure-aware: the input is the metadata values, NUL-separated, in a well-formed file
    name: 'checkpoint-meta',
    seeds: () => {
      const { metadata } = readSafetensors(checkpointSeed());
      return [new TextEncoder().encode(META_KEYS.map((k) => metadata[k]).join('\0'))];
    },
    run: (b) => {
      const values = Buffer.from(b).toString('utf8').split('\0');
      const metadata: Record<string, string> = { format: CHECKPOINT_FORMAT };
      META_KEYS.forEach((k, i) => {
        if (values[i] !== undefined) metadata[k] = values[i];
      });
      parseCheckpoint(writeSafetensors(new Map([['w', f32([2], [1, 2])]]), metadata), SOURCE);
    },
  },
];

/** Whether what `run` threw is a located refusal (passes) rather than a crash. */
export function isCleanRefusal(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith(`${SOURCE}:`);
}
