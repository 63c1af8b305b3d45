// The readers of untrusted files stay bounded (issue 14, items 3, 4, 5, 9, 10):
// linear-time pickle integers with a cap, no recursion blow-up on deep or
// self-containing data, storages shared instead of copied per name, caps on
// tensor bytes, deflate ratios and pixels, and no hang on a FIFO. Every cap is
// an error naming the file and the limit.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTmpDirs } from './fixtures/io/helpers.js';
import { decodeImage } from '../src/io/image.js';
import { MAX_IMAGE_PIXELS } from '../src/io/limits.js';
import { unpickle } from '../src/io/pickle.js';
import { loadTorchPt, readTorchPt } from '../src/io/torch-pt.js';
import { crc32, readZipDirectory } from '../src/io/zip.js';

const root = path.resolve(import.meta.dirname, '..');
const fixture = (name: string) => path.join(root, 'test/fixtures/io', name);
const tmp = useTmpDirs('tk-bounds-');
const refuse = {
  source: 'p.pkl',
  findGlobal: (): never => {
    throw new Error('no globals');
  },
};
const bytes = (...parts: (number[] | Uint8Array)[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

/** The legacy torch.save layout around one data pickle body (protocol 2, without its PROTO and STOP). */
function legacyPt(body: number[]): Uint8Array {
  const magic = [0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
  const protocol = [0x80, 2, 0x4d, 0xe9, 0x03, 0x2e];
  const sysInfo = [0x80, 2, 0x7d, 0x2e];
  const keys = [0x80, 2, 0x5d, 0x2e];
  return bytes(magic, protocol, sysInfo, [0x80, 2, ...body, 0x2e], keys);
}

describe('pickle integers', () => {
  it('LONG1/LONG4 decode in linear time, as two-complement little-endian', () => {
    const long4 = (b: number[]) => unpickle(bytes([0x80, 2, 0x8b], u32(b.length), b, [0x2e]), 0, refuse).value;
    expect(long4([0x00, 0x01])).toBe(256);
    expect(long4([0xff])).toBe(-1);
    expect(long4([0x00, 0x80])).toBe(-32768);
    expect(long4(new Array(1024).fill(0xff))).toBe(-1);
    expect(long4([...new Array(1023).fill(0), 0x40])).toBe(2n ** 8190n);
  });

  it('a 300 KB LONG4 (165 s before) is refused at once, naming the limit', () => {
    const n = 300_000;
    const t0 = performance.now();
    expect(() => unpickle(bytes([0x80, 2, 0x8b], u32(n), new Uint8Array(n), [0x2e]), 0, refuse)).toThrow(
      /p\.pkl: bad pickle at byte 7: integer of 300000 bytes is over the 1024-byte limit/,
    );
    expect(performance.now() - t0).toBeLessThan(5000); // generous: the point is not minutes
    const digits = '1'.repeat(5000);
    expect(() => unpickle(bytes([0x80, 2, 0x4c], Buffer.from(`${digits}L\n`), [0x2e]), 0, refuse)).toThrow(
      /integer of 5000 digits is over the 1024-digit limit/,
    );
  });
});

describe('deep and self-containing pickles', () => {
  it('dicts nested 100,000 deep: an error naming the limit, not a stack overflow', () => {
    const depth = 100_000;
    const body = [0x7d]; // {}
    for (let i = 0; i < depth; i++) body.push(0x8c, 1, 0x61, 0x7d); // 'a', {}
    for (let i = 0; i < depth; i++) body.push(0x73); // SETITEM: d[i]['a'] = d[i+1]
    expect(() => readTorchPt(legacyPt(body), 'deep.pt')).toThrow(/^deep\.pt: dicts nest more than 100 deep/);
  });

  it('a list that contains itself as a dict key: unhashable, as in Python (not a circular-JSON TypeError)', () => {
    // {}, [] memo 0, get 0, append (the list holds itself), tuple1, 1, setitem
    const p = bytes([0x80, 2, 0x7d, 0x5d, 0x71, 0, 0x68, 0, 0x61, 0x85, 0x4b, 1, 0x73, 0x2e]);
    expect(() => unpickle(p, 0, refuse)).toThrow(/p\.pkl: bad pickle at byte \d+: unhashable type 'list' in a dict key/);
  });

  it('tuple keys nested deeper than the limit are refused; equal shallow tuples are one key', () => {
    const deep = [0x80, 2, 0x7d, 0x29, ...new Array(200).fill(0x85), 0x4b, 1, 0x73, 0x2e]; // ((((),),),...) -> 1
    expect(() => unpickle(Uint8Array.from(deep), 0, refuse)).toThrow(/dict key nests tuples more than 100 deep/);
    // {(1, 'a'): 1, (1, 'a'): 2} has one key
    const key = [0x4b, 1, 0x8c, 1, 0x61, 0x86];
    const d = unpickle(bytes([0x80, 2, 0x7d, ...key, 0x4b, 1, 0x73, ...key, 0x4b, 2, 0x73, 0x2e]), 0, refuse).value as {
      map: Map<unknown, unknown>;
    };
    expect([...d.map.values()]).toEqual([2]);
  });

  it('APPENDS of 300,000 items (push(...items) overflowed the stack)', () => {
    const p = bytes([0x80, 2, 0x5d, 0x28], new Array(300_000).fill(0x4e), [0x65, 0x2e]);
    expect((unpickle(p, 0, refuse).value as unknown[]).length).toBe(300_000);
  });
});

describe('.pt memory stays proportional to the file', () => {
  it('names sharing one storage share its memory, as in PyTorch; a strided view is a copy', () => {
    const t = loadTorchPt(fixture('shared_storage_zip.pt'));
    expect(t.size).toBe(301);
    const buffers = new Set([...t.entries()].filter(([k]) => k !== 'transposed').map(([, v]) => v.data.buffer));
    expect(buffers.size).toBe(1);
    const base = t.get('v0')!.data as Float32Array;
    expect(base[16383]).toBe(16383);
    const tr = t.get('transposed')!;
    expect(tr.shape).toEqual([128, 128]);
    expect((tr.data as Float32Array)[1]).toBe(128); // t()[0][1] = base[1][0]
    expect(tr.data.buffer).not.toBe(base.buffer);
  });

  it('the tensors a file yields are capped in total, naming the limit', () => {
    // 300 names x 64 KB: 19.2 MB of tensors from an 89 KB file
    expect(() => loadTorchPt(fixture('shared_storage_zip.pt'), { maxBytes: 10 * 1024 * 1024 })).toThrow(
      /shared_storage_zip\.pt: tensors add up to more than the 10 MiB limit \(at tensor 'v\d+'\)/,
    );
  });

  it('a deflated storage may not expand more than 100:1 (4 MB of zeros from 4 KB)', () => {
    const f = fixture('zeros_deflated.pt');
    expect(fs.statSync(f).size).toBeLessThan(10_000);
    expect(() => loadTorchPt(f)).toThrow(
      /zeros_deflated\.pt: corrupt zip archive: entry '[^']*data\/0' would inflate \d+ bytes to 4194304, over the 100:1 limit/,
    );
  });
});

/** A one-entry zip whose central directory entry carries `extra`; no data needed, the directory is read first. */
function zipWithExtra(extra: number[], size = 0xffffffff): Uint8Array {
  const name = Buffer.from('a/data.pkl');
  const local = bytes(u32(0x04034b50), new Array(22).fill(0), [name.length, 0, 0, 0], name);
  const central = bytes(
    u32(0x02014b50),
    [20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    u32(0),
    u32(0),
    u32(size),
    [name.length, 0, extra.length & 0xff, extra.length >> 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    u32(0),
    name,
    extra,
  );
  const eocd = bytes(u32(0x06054b50), [0, 0, 0, 0, 1, 0, 1, 0], u32(central.length), u32(local.length), [0, 0]);
  return bytes(local, central, eocd);
}

describe('zip', () => {
  it('a zip64 extra field claiming more bytes than the entry has is corrupt, named (not a DataView RangeError)', () => {
    expect(() => readZipDirectory(zipWithExtra([1, 0, 0xff, 0xff, 0, 0, 0, 0]), 'x.pt')).toThrow(
      /^x\.pt: corrupt zip archive: extra field 0x0001 of entry 'a\/data\.pkl' claims 65535 bytes, past the end of its extra data$/,
    );
    // a well-formed zip64 size is read
    const ok = readZipDirectory(zipWithExtra([1, 0, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0]), 'y.pt');
    expect(ok.get('a/data.pkl')!.size).toBe(5);
  });
});

describe('images: a pixel cap on every decoder, checked before decoding', () => {
  it('a PNG header of 20000x20000 (389 KB for 2.5 GB) is refused', () => {
    const png = new Uint8Array(fs.readFileSync(path.join(root, 'examples/images/bird.png')));
    const v = new DataView(png.buffer);
    v.setUint32(16, 20000);
    v.setUint32(20, 20000);
    v.setUint32(29, crc32(png.subarray(12, 29))); // a valid IHDR, so only the size is wrong
    expect(() => decodeImage(png, 'big.png')).toThrow(
      `big.png: PNG of 20000x20000 pixels, over the limit of ${MAX_IMAGE_PIXELS.toLocaleString('en')} pixels`,
    );
  });

  it('a JPEG frame of 9000x9000 (81 MP; jpeg-js allows 100 by default) is refused', () => {
    const jpg = new Uint8Array(fs.readFileSync(path.join(root, 'test/fixtures/images/gray-40x20.jpg')));
    const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
    const v = new DataView(jpg.buffer);
    v.setUint16(sof + 5, 9000);
    v.setUint16(sof + 7, 9000);
    expect(() => decodeImage(jpg, 'big.jpg')).toThrow('big.jpg: JPEG of 9000x9000 pixels, over the limit of 50,000,000 pixels');
  });

  it('a size the file is too short to hold is refused before the decoder allocates for it', () => {
    const jpg = new Uint8Array(fs.readFileSync(path.join(root, 'test/fixtures/images/gray-40x20.jpg')));
    const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
    // 5000 x 5000: 625 x 625 blocks of 8x8, one bit each at least: 48,829 bytes
    new DataView(jpg.buffer).setUint16(sof + 5, 5000);
    new DataView(jpg.buffer).setUint16(sof + 7, 5000);
    expect(() => decodeImage(jpg, 'forged.jpg')).toThrow(
      `forged.jpg: JPEG claims 5000x5000 pixels, which take at least 48829 bytes, but the file has ${jpg.length}: truncated or corrupt`,
    );
    const png = new Uint8Array(fs.readFileSync(path.join(root, 'examples/images/bird.png')));
    new DataView(png.buffer).setUint32(16, 7000);
    new DataView(png.buffer).setUint32(20, 7000);
    expect(() => decodeImage(png, 'forged.png')).toThrow(
      /^forged\.png: PNG claims 7000x7000 pixels, which take at least \d+ bytes, but the file has \d+: truncated or corrupt$/,
    );
  });
});

describe('files that are not regular files', () => {
  const fifoDir = () => {
    const dir = tmp();
    if (spawnSync('mkfifo', [path.join(dir, 'data_batch_1.bin')]).status !== 0) return undefined;
    return dir;
  };

  it('a FIFO named like a CIFAR batch fails gen train at once instead of hanging', () => {
    const dir = fifoDir();
    if (!dir) return; // no mkfifo here
    const record = new Uint8Array(3073);
    for (const f of ['data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'])
      fs.writeFileSync(path.join(dir, f), record);
    const r = spawnSync(process.execPath, ['bin/gen.js', 'train', 'models/book.ts', '--model', 'Net', '--data', dir, '--epochs', '0'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.signal).toBe(null); // not killed by the timeout
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`gen: CIFAR batch file ${path.join(dir, 'data_batch_1.bin')} is a FIFO (named pipe), not a regular file`);
  });

  it('a FIFO or a directory given as weights or image is refused by name', async () => {
    const dir = fifoDir();
    if (!dir) return;
    const fifo = path.join(dir, 'data_batch_1.bin');
    const { readCheckpoint } = await import('../src/train/checkpoint.js');
    const { loadImage } = await import('../src/io/image.js');
    expect(() => readCheckpoint(fifo)).toThrow(`weights file ${fifo} is a FIFO (named pipe), not a regular file`);
    expect(() => loadTorchPt(fifo)).toThrow(/is a FIFO/);
    expect(() => loadImage(fifo)).toThrow(`image file ${fifo} is a FIFO (named pipe), not a regular file`);
    expect(() => readCheckpoint(dir)).toThrow(`weights file ${dir} is a directory, not a regular file`);
  });
});
