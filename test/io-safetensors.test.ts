import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { seededInts, useTmpDirs } from './fixtures/io/helpers.js';
import {
  f32,
  f64,
  i64,
  loadSafetensors,
  readSafetensors,
  saveSafetensors,
  toFloat32,
  writeSafetensors,
  type Tensor,
} from '../src/io/safetensors.js';

const golden = path.resolve(import.meta.dirname, '../../shared/golden');

/** A safetensors file from a header (object or raw text) and data bytes. */
function raw(header: unknown, data: Uint8Array | number = 0, headerLen?: bigint): Uint8Array {
  const text = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + text.length + body.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(text.length), true);
  out.set(text, 8);
  out.set(body, 8 + text.length);
  return out;
}

function headerOf(bytes: Uint8Array): { text: string; dataStart: number } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { text: new TextDecoder().decode(bytes.subarray(8, 8 + n)), dataStart: 8 + n };
}

function sample(): [string, Tensor][] {
  return [
    ['conv.weight', f32([2, 1, 2, 2], [1, -2, 3.5, 4, 5, 6, 7, -8])],
    ['10', f32([3], [0.25, 0.5, 0.75])], // integer-like names must keep their place
    ['2', i64([2], [-1n, 2n ** 62n])],
    ['bn.num_batches_tracked', i64([], [7])],
    ['d', f64([2], [Math.PI, -1e300])],
    ['i', { dtype: 'I32', shape: [2], data: Int32Array.from([-5, 1 << 30]) }],
    ['u', { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) }],
    ['empty', f32([0, 3])],
  ];
}

function expectSame(got: Map<string, Tensor>, want: [string, Tensor][]): void {
  expect([...got.keys()]).toEqual(want.map(([k]) => k));
  for (const [k, t] of want) {
    const g = got.get(k)!;
    expect(g.dtype, k).toBe(t.dtype);
    expect(g.shape, k).toEqual(t.shape);
    expect(Array.from(g.data as ArrayLike<number | bigint>), k).toEqual(Array.from(t.data as ArrayLike<number | bigint>));
  }
}

describe('safetensors round trip', () => {
  it('keeps names, order, dtypes, shapes, values and metadata', () => {
    const bytes = writeSafetensors(sample(), { format: 'test', note: 'ünïcode ✓' });
    const back = readSafetensors(bytes);
    expectSame(back.tensors, sample());
    expect(back.metadata).toEqual({ format: 'test', note: 'ünïcode ✓' });
    expect(readSafetensors(writeSafetensors(new Map(sample()))).metadata).toEqual({});
  });

  it('pads the header to 8 bytes and aligns every tensor, with no gaps', () => {
    const bytes = writeSafetensors(sample(), { a: 'b' });
    const { text, dataStart } = headerOf(bytes);
    expect(dataStart % 8).toBe(0);
    expect(text.startsWith('{"__metadata__":{"a":"b"},"conv.weight":')).toBe(true);
    const entries = Object.entries(JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>)
      .filter(([k]) => k !== '__metadata__')
      .map(([, e]) => e)
      .sort((a, b) => a.data_offsets[0] - b.data_offsets[0] || a.data_offsets[1] - b.data_offsets[1]);
    let pos = 0;
    for (const e of entries) {
      expect(e.data_offsets[0]).toBe(pos);
      expect(e.data_offsets[0] % { F32: 4, F64: 8, I64: 8, I32: 4, U8: 1 }[e.dtype]!).toBe(0);
      pos = e.data_offsets[1];
    }
    expect(bytes.length).toBe(dataStart + pos);
  });

  it('views aligned data and copies misaligned data', () => {
    const bytes = writeSafetensors(sample());
    const aligned = readSafetensors(bytes).tensors.get('2')!;
    expect(aligned.data.buffer).toBe(bytes.buffer);

    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const misaligned = shifted.subarray(1);
    const back = readSafetensors(misaligned).tensors;
    expectSame(back, sample());
    expect(back.get('2')!.data.buffer).not.toBe(shifted.buffer);
  });

  it('refuses to write inconsistent tensors', () => {
    expect(() => writeSafetensors([['w', { dtype: 'F32', shape: [3], data: new Float32Array(2) }]])).toThrow(
      /tensor 'w': shape \[3\] needs 3 elements, data has 2/,
    );
    expect(() => writeSafetensors([['w', { dtype: 'I64', shape: [2], data: new Float32Array(2) }]])).toThrow(
      /dtype I64 needs a BigInt64Array/,
    );
    expect(() => writeSafetensors([['__metadata__', f32([1])]])).toThrow(/reserved/);
    expect(() =>
      writeSafetensors([
        ['w', f32([1])],
        ['w', f32([1])],
      ]),
    ).toThrow(/'w' is given twice/);
    expect(() => writeSafetensors([['w', f32([1])]], { epoch: 3 as unknown as string })).toThrow(/'epoch' is a number, not a string/);
  });
});

describe('helpers', () => {
  it('f32, f64, i64 and toFloat32', () => {
    expect(f32([2, 2]).data).toEqual(new Float32Array(4));
    expect(() => f32([2], [1])).toThrow(/needs 2 values, got 1/);
    expect(i64([2], [3, 4n]).data).toEqual(BigInt64Array.from([3n, 4n]));
    const t = toFloat32(i64([2], [3, -4]));
    expect(t.dtype).toBe('F32');
    expect(Array.from(t.data)).toEqual([3, -4]);
    expect(Array.from(toFloat32(f64([1], [0.1])).data)).toEqual([Math.fround(0.1)]);
    const same = f32([1], [1]);
    expect(toFloat32(same)).toBe(same);
  });
});

describe('PyTorch golden files', () => {
  it('reads Net weights in state_dict order', () => {
    const { tensors, metadata } = loadSafetensors(path.join(golden, 'Net/weights.safetensors'));
    expect(metadata).toEqual({ format: 'golden-v1', model: 'Net' });
    expect([...tensors].map(([k, t]) => [k, t.dtype, t.shape])).toEqual([
      ['conv1.weight', 'F32', [16, 3, 3, 3]],
      ['conv1.bias', 'F32', [16]],
      ['conv2.weight', 'F32', [8, 16, 3, 3]],
      ['conv2.bias', 'F32', [8]],
      ['fc1.weight', 'F32', [32, 512]],
      ['fc1.bias', 'F32', [32]],
      ['fc2.weight', 'F32', [2, 32]],
      ['fc2.bias', 'F32', [2]],
    ]);
    // PyTorch's default init bounds conv1 by 1/sqrt(fan_in) = 1/sqrt(27)
    const w = tensors.get('conv1.weight')!.data as Float32Array;
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(27));
  });

  it('reads Net io: I64 labels, F32 input and scalar loss', () => {
    const { tensors, metadata } = loadSafetensors(path.join(golden, 'Net/io.safetensors'));
    expect(metadata).toEqual({ format: 'golden-v1', case: 'Net', model: 'Net' });
    expect([...tensors.keys()].slice(0, 5)).toEqual(['x', 'labels', 'logits_eval', 'logits_train', 'loss']);
    const labels = tensors.get('labels')!;
    expect(labels.dtype).toBe('I64');
    expect(labels.shape).toEqual([8]);
    expect([...(labels.data as BigInt64Array)].every((v) => v === 0n || v === 1n)).toBe(true);
    expect(tensors.get('x')!.shape).toEqual([8, 3, 32, 32]);
    const loss = tensors.get('loss')!;
    expect(loss.shape).toEqual([]);
    expect(loss.data.length).toBe(1);
    expect((loss.data as Float32Array)[0]).toBeGreaterThan(0.5);
    expect((loss.data as Float32Array)[0]).toBeLessThan(1);
    expect(tensors.get('grad.fc2.bias')!.shape).toEqual([2]);
  });

  it('reads the I64 num_batches_tracked scalars of NetBatchNorm', () => {
    const w = loadSafetensors(path.join(golden, 'NetBatchNorm/weights.safetensors')).tensors;
    const keys = [...w.keys()];
    expect(keys.slice(0, 7)).toEqual([
      'conv1.weight',
      'conv1.bias',
      'conv1_batchnorm.weight',
      'conv1_batchnorm.bias',
      'conv1_batchnorm.running_mean',
      'conv1_batchnorm.running_var',
      'conv1_batchnorm.num_batches_tracked',
    ]);
    const nbt = w.get('conv1_batchnorm.num_batches_tracked')!;
    expect(nbt).toMatchObject({ dtype: 'I64', shape: [] });
    expect(nbt.data).toEqual(BigInt64Array.from([0n]));
    const after = loadSafetensors(path.join(golden, 'NetBatchNorm/io.safetensors')).tensors;
    expect(after.get('after.conv2_batchnorm.num_batches_tracked')!.data).toEqual(BigInt64Array.from([1n]));
    expect(Array.from(w.get('conv1_batchnorm.running_var')!.data as Float32Array).every((v) => v === 1)).toBe(true);
  });

  it('writes the golden files back byte for byte', () => {
    for (const file of ['Net/weights.safetensors', 'Net/io.safetensors', 'NetBatchNorm/io.safetensors']) {
      const bytes = fs.readFileSync(path.join(golden, file));
      const { tensors, metadata } = readSafetensors(bytes, file);
      expect(Buffer.from(writeSafetensors(tensors, metadata)).equals(bytes), file).toBe(true);
    }
  });
});

describe('bad safetensors files', () => {
  const f4 = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
  const bad = (bytes: Uint8Array, message: RegExp) => {
    expect(() => readSafetensors(bytes, 'bad.safetensors')).toThrow(message);
    expect(() => readSafetensors(bytes, 'bad.safetensors')).toThrow(/^bad\.safetensors: /);
  };

  it('a file shorter than 8 bytes', () => {
    bad(new Uint8Array(5), /file is 5 bytes, shorter than the 8-byte header length/);
  });

  it('a header length past the end of the file or over 100 MB', () => {
    bad(raw({ w: f4 }, 4, 1000n), /header length 1000 runs past the end of the file \(\d+ bytes\)/);
    bad(raw({ w: f4 }, 4, 200_000_000n), /header length 200000000 is over the 104857600-byte limit/);
    bad(raw({ w: f4 }, 4, 2n ** 64n - 1n), /is over the .* limit/);
  });

  it('a header that is not JSON, not UTF-8 or not an object', () => {
    bad(raw('{"w": {"dtype": "F32",', 4), /header is not valid JSON/);
    bad(raw('[1, 2]'), /header is not a JSON object/);
    bad(raw('null'), /header is not a JSON object/);
    const text = raw('{"w":1}');
    text[9] = 0xff;
    bad(text, /header is not valid UTF-8/);
    bad(
      raw('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
      /header names 'w' twice/,
    );
  });

  it('entries with missing fields or wrong types', () => {
    bad(raw({ w: [1] }, 4), /tensor 'w': entry is an array, not an object/);
    bad(raw({ w: { dtype: 'F32', shape: [1] } }, 4), /tensor 'w': missing field 'data_offsets'/);
    bad(raw({ w: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'w': missing field 'dtype'/);
    bad(raw({ w: { ...f4, dtype: 5 } }, 4), /tensor 'w': dtype is a number, not a string/);
    bad(raw({ w: { ...f4, shape: '1' } }, 4), /tensor 'w': shape is a string, not an array/);
    bad(raw({ w: { ...f4, data_offsets: [0] } }, 4), /tensor 'w': data_offsets is not a \[begin, end\] pair/);
    bad(raw({ w: { ...f4, data_offsets: ['0', 4] } }, 4), /tensor 'w': data_offsets \["0",4\] are not non-negative integers/);
    bad(raw({ w: { ...f4, data_offsets: [-4, 0] } }, 4), /are not non-negative integers/);
  });

  it('an unknown dtype', () => {
    bad(raw({ w: { ...f4, dtype: 'F16' } }, 4), /tensor 'w': unknown dtype 'F16' \(supported: F32, F64, I64, I32, U8\)/);
  });

  it('negative or non-integer shape dims', () => {
    bad(raw({ w: { ...f4, shape: [-1] } }, 4), /tensor 'w': shape\[0\] is -1, not a non-negative integer/);
    bad(raw({ w: { ...f4, shape: [1, 1.5] } }, 4), /tensor 'w': shape\[1\] is 1.5/);
    bad(raw({ w: { ...f4, shape: [null] } }, 4), /tensor 'w': shape\[0\] is null/);
  });

  it('data offsets out of range or reversed', () => {
    bad(raw({ w: { ...f4, data_offsets: [0, 8] } }, 4), /tensor 'w': data_offsets \[0, 8\] run past the data section \(4 bytes\)/);
    bad(raw({ w: { ...f4, data_offsets: [4, 0] } }, 4), /tensor 'w': data_offsets end 0 is before begin 4/);
  });

  it('a byte size that does not match the shape', () => {
    bad(raw({ w: { ...f4, shape: [2] } }, 8), /tensor 'w': 4 bytes of data, but F32 \[2\] needs 8/);
    bad(raw({ w: { dtype: 'I64', shape: [], data_offsets: [0, 4] } }, 8), /I64 \[\] needs 8/);
  });

  it('overlapping tensors, while gaps are fine', () => {
    const a = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    bad(raw({ a, b: { ...a, data_offsets: [4, 12] } }, 12), /tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/);
    const gap = readSafetensors(raw({ a: f4, b: { ...f4, data_offsets: [8, 12] } }, 12));
    expect([...gap.tensors.keys()]).toEqual(['a', 'b']);
    // empty tensors take no bytes and overlap nothing
    expect(readSafetensors(raw({ a: f4, e: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } }, 4)).tensors.size).toBe(2);
  });

  it('metadata keys that look like JS internals stay plain data', () => {
    const m = readSafetensors(raw('{"__metadata__":{"__proto__":"x","constructor":"y"}}')).metadata;
    expect(Object.keys(m)).toEqual(['__proto__', 'constructor']);
    expect(m.__proto__).toBe('x');
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
  });

  it('metadata that is not an object of strings', () => {
    bad(raw({ __metadata__: { epoch: 3 }, w: f4 }, 4), /__metadata__ value 'epoch' is a number, not a string/);
    bad(raw({ __metadata__: 'x', w: f4 }, 4), /__metadata__ is not an object/);
  });

  it('never returns a partial result nor crashes on random damage', () => {
    const good = writeSafetensors(sample(), { k: 'v' });
    const rand = seededInts(12345);
    for (let trial = 0; trial < 400; trial++) {
      const bytes = new Uint8Array(good.subarray(0, trial % 3 === 0 ? rand(good.length) : good.length));
      for (let k = 0; k < 3; k++) if (bytes.length > 0) bytes[rand(bytes.length)] = rand(256);
      try {
        const r = readSafetensors(bytes, 'fuzz');
        for (const t of r.tensors.values()) expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message).toMatch(/^fuzz: /);
      }
    }
  });
});

describe('saveSafetensors', () => {
  const tmpdir = useTmpDirs('tk-io-');

  it('writes a file that loads back, replacing the old one', () => {
    const dir = tmpdir();
    const file = path.join(dir, 'w.safetensors');
    fs.writeFileSync(file, 'old');
    saveSafetensors(file, sample(), { v: '1' });
    const back = loadSafetensors(file);
    expectSame(back.tensors, sample());
    expect(back.metadata).toEqual({ v: '1' });
    expect(fs.readdirSync(dir)).toEqual(['w.safetensors']);
  });

  it('keeps the old file and leaves no temp file when the tensors are bad', () => {
    const dir = tmpdir();
    const file = path.join(dir, 'w.safetensors');
    saveSafetensors(file, [['a', f32([1], [1])]]);
    const before = fs.readFileSync(file);
    expect(() => saveSafetensors(file, [['a', { dtype: 'F32', shape: [2], data: new Float32Array(1) }]])).toThrow(/needs 2 elements/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(['w.safetensors']);
  });

  it('removes the temp file when the final rename fails', () => {
    const dir = tmpdir();
    const target = path.join(dir, 'taken');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    expect(() => saveSafetensors(target, sample())).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['taken']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  it('fails with a clear error in a missing folder', () => {
    expect(() => saveSafetensors(path.join(tmpdir(), 'no/such/dir/w.safetensors'), sample())).toThrow(/ENOENT/);
  });
});
