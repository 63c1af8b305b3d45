import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { seededInts, useTmpDirs } from './fixtures/io/helpers.js';
import { convertFile } from '../src/io/convert.js';
import { unpickle } from '../src/io/pickle.js';
import { f64, loadSafetensors, saveSafetensors, type Tensor } from '../src/io/safetensors.js';
import { loadTorchPt, readTorchPt } from '../src/io/torch-pt.js';

// Made by tools/make_pt_fixtures.py (PyTorch 1.13): each state_dict saved as
// <name>_zip.pt, <name>_legacy.pt and, as the reference, <name>.safetensors.
const fixtures = path.resolve(import.meta.dirname, 'fixtures/io');
const fixture = (name: string) => path.join(fixtures, name);

function values(t: Tensor): (number | bigint)[] {
  return Array.from(t.data as ArrayLike<number | bigint>);
}

function expectSameTensors(got: Map<string, Tensor>, want: Map<string, Tensor>): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [k, t] of want) {
    const g = got.get(k)!;
    expect(g.dtype, k).toBe(t.dtype);
    expect(g.shape, k).toEqual(t.shape);
    expect(values(g), k).toEqual(values(t));
  }
}

function forbiddenMessage(global: string, file: string): string {
  return `${file}: forbidden global '${global}': only tensors, storages and dicts are accepted`;
}

describe('torch.save files', () => {
  for (const name of ['tiny', 'views']) {
    for (const format of ['zip', 'legacy']) {
      it(`${name}_${format}.pt matches the same tensors written as safetensors`, () => {
        const want = loadSafetensors(fixture(`${name}.safetensors`)).tensors;
        expectSameTensors(loadTorchPt(fixture(`${name}_${format}.pt`)), want);
      });
    }
  }

  it('reads deflated entries and big-endian archives', () => {
    const want = loadSafetensors(fixture('tiny.safetensors')).tensors;
    expectSameTensors(loadTorchPt(fixture('tiny_deflated.pt')), want);
    expectSameTensors(loadTorchPt(fixture('tiny_big_endian.pt')), want);
  });

  it('refuses expanded (stride 0) tensors with a hint', () => {
    const file = fixture('expanded_zip.pt');
    expect(() => loadTorchPt(file)).toThrow(
      `${file}: tensor 'expanded' has 1000 elements but its storage holds 1; save it with .contiguous()`,
    );
  });

  it('reads a model state_dict in key order, with the I64 BatchNorm counter', () => {
    const t = loadTorchPt(fixture('tiny_zip.pt'));
    expect([...t].map(([k, v]) => [k, v.dtype, v.shape])).toEqual([
      ['conv1.weight', 'F32', [4, 3, 3, 3]],
      ['conv1.bias', 'F32', [4]],
      ['conv1_batchnorm.weight', 'F32', [4]],
      ['conv1_batchnorm.bias', 'F32', [4]],
      ['conv1_batchnorm.running_mean', 'F32', [4]],
      ['conv1_batchnorm.running_var', 'F32', [4]],
      ['conv1_batchnorm.num_batches_tracked', 'I64', []],
      ['fc1.weight', 'F32', [2, 16]],
      ['fc1.bias', 'F32', [2]],
    ]);
    expect(t.get('conv1_batchnorm.num_batches_tracked')!.data).toEqual(BigInt64Array.from([1n]));
  });

  it('makes views of a shared storage contiguous (offsets, strides, transposes)', () => {
    for (const format of ['zip', 'legacy']) {
      const t = loadTorchPt(fixture(`views_${format}.pt`));
      const base = values(t.get('base')!) as number[]; // arange(12).reshape(3, 4) / 4
      expect(base).toEqual(Array.from({ length: 12 }, (_, i) => i / 4));
      const at = (r: number, c: number) => base[r * 4 + c];
      expect(t.get('transposed')!.shape).toEqual([4, 3]);
      expect(values(t.get('transposed')!)).toEqual([0, 1, 2, 3].flatMap((c) => [0, 1, 2].map((r) => at(r, c))));
      expect(values(t.get('row')!)).toEqual([at(1, 0), at(1, 1), at(1, 2), at(1, 3)]);
      expect(values(t.get('column')!)).toEqual([at(0, 2), at(1, 2), at(2, 2)]);
      expect(values(t.get('every_other')!)).toEqual([at(0, 1), at(0, 3), at(2, 1), at(2, 3)]);
      // as in PyTorch, a contiguous view shares its storage (no copy per name); a strided one is gathered
      expect(t.get('row')!.data.buffer).toBe(t.get('base')!.data.buffer);
      expect(t.get('transposed')!.data.buffer).not.toBe(t.get('base')!.data.buffer);
      expect(t.get('i64')!.data).toEqual(BigInt64Array.from([-3n, 0n, 2n ** 40n, 7n]));
      expect(t.get('scalar')).toMatchObject({ dtype: 'F64', shape: [] });
      expect(values(t.get('half')!).slice(0, 3)).toEqual([0.5, -1.25, 3]);
      expect(t.get('half')!.dtype).toBe('F32');
      expect(values(t.get('bf16')!)).toEqual([1.5, -2, 3.140625]);
      expect(t.get('empty')!.shape).toEqual([0, 3]);
      expect(values(t.get('param')!)).toEqual([1, 2]);
    }
  });

  it('reads nested dicts with dotted names, and refuses or skips other values', () => {
    const file = fixture('checkpoint_zip.pt');
    expect(() => loadTorchPt(file)).toThrow(`${file}: 'epoch' is an int, not a tensor`);
    const t = loadTorchPt(file, { nonTensors: 'skip' });
    expect([...t.keys()][0]).toBe('model.conv1.weight');
    expect(t.size).toBe(9);
  });
});

describe('the restricted unpickler', () => {
  for (const file of ['evil_system_zip.pt', 'evil_system_legacy.pt', 'evil_system.pkl']) {
    it(`refuses os.system in ${file}`, () => {
      // pickle records os.system under its real module, posix
      expect(() => loadTorchPt(fixture(file))).toThrow(forbiddenMessage('posix.system', fixture(file)));
    });
  }

  for (const file of ['evil_eval_zip.pt', 'evil_eval_legacy.pt']) {
    it(`refuses eval in ${file}`, () => {
      expect(() => loadTorchPt(fixture(file))).toThrow(forbiddenMessage('__builtin__.eval', fixture(file)));
    });
  }

  it('refuses a pickled module (save the state_dict instead)', () => {
    const file = fixture('whole_model_zip.pt');
    expect(() => loadTorchPt(file)).toThrow(forbiddenMessage('__main__.Tiny', file));
  });

  it('refuses globals in every opcode form', () => {
    const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    // protocol 2 GLOBAL: os.system('ls')
    expect(() => readTorchPt(enc('\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.'), 'g.pkl')).toThrow(
      forbiddenMessage('os.system', 'g.pkl'),
    );
    // protocol 4 STACK_GLOBAL: builtins.eval
    expect(() => readTorchPt(enc('\x80\x04\x8c\x08builtins\x8c\x04eval\x93.'), 's.pkl')).toThrow(
      forbiddenMessage('builtins.eval', 's.pkl'),
    );
    // a storage type is a name, not something to call
    expect(() => readTorchPt(enc('\x80\x02ctorch\nFloatStorage\n)R.'), 'c.pkl')).toThrow(
      /c.pkl: bad pickle at byte \d+: cannot call torch.FloatStorage/,
    );
    // INST and OBJ would construct arbitrary classes
    expect(() => readTorchPt(enc('\x80\x02(ios\nsystem\n.'), 'i.pkl')).toThrow(/i.pkl: bad pickle at byte 3: unsupported opcode 0x69/);
  });

  it('reads plain data across protocols', () => {
    const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
    const opts = {
      source: 'p',
      findGlobal: () => {
        throw new Error('no globals');
      },
    };
    // protocol 4 with FRAME and MEMOIZE: {'a': [1, -2, 3.5, None, True]}
    const p4 = enc(
      '\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94](K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88es.',
    );
    const { value } = unpickle(p4, 0, opts);
    expect((value as { map: Map<unknown, unknown> }).map.get('a')).toEqual([1, -2, 3.5, null, true]);
    // LONG1 beyond 2^53 becomes a bigint
    expect(unpickle(enc('\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.'), 0, opts).value).toBe(2n ** 64n);
    expect(() => unpickle(enc('\x80\x02K'), 0, opts)).toThrow(/p: bad pickle at byte 3: data ends early/);
    expect(() => unpickle(enc('\x80\x02K\x01'), 0, opts)).toThrow(/pickle ends without STOP/);
  });
});

describe('damaged .pt files', () => {
  const enc = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

  it('says what is wrong with a file that is no PyTorch file', () => {
    expect(() => readTorchPt(new Uint8Array(0), 'empty.pt')).toThrow('empty.pt: not a PyTorch file (neither a zip archive nor a pickle)');
    expect(() => readTorchPt(enc('hello'), 'h.pt')).toThrow('h.pt: not a PyTorch file');
    expect(() => readTorchPt(enc('\x80\x02K\x05.'), 'n.pt')).toThrow(
      'n.pt: not a PyTorch file (no zip archive and no legacy magic number)',
    );
  });

  it('a truncated zip', () => {
    const bytes = fs.readFileSync(fixture('tiny_zip.pt'));
    expect(() => readTorchPt(bytes.subarray(0, 2000), 'cut.pt')).toThrow(
      /^cut.pt: corrupt zip archive: no end-of-central-directory record \(truncated file\?\)/,
    );
  });

  it('a zip whose storage bytes were changed', () => {
    const bytes = new Uint8Array(fs.readFileSync(fixture('tiny_zip.pt')));
    const at = Buffer.from(bytes).indexOf('tiny_zip/data/0') + 100; // inside the first storage
    bytes[at] ^= 0xff;
    expect(() => readTorchPt(bytes, 'flip.pt')).toThrow(
      /^flip.pt: corrupt zip archive: entry 'tiny_zip\/data\/\d+' fails its CRC-32 check/,
    );
  });

  it('a truncated legacy file', () => {
    const bytes = fs.readFileSync(fixture('tiny_legacy.pt'));
    expect(() => readTorchPt(bytes.subarray(0, bytes.length - 3), 'cut.pt')).toThrow(
      /^cut.pt: file ends inside storage '\d+' \(truncated file\?\)/,
    );
    expect(() => readTorchPt(bytes.subarray(0, 400), 'cut.pt')).toThrow(/^cut.pt: bad pickle at byte \d+: .*(truncated file\?)/);
  });

  for (const file of ['tiny_zip.pt', 'tiny_deflated.pt', 'tiny_legacy.pt', 'views_legacy.pt']) {
    it(`never crashes on any truncation or random damage of ${file}`, () => {
      const good = fs.readFileSync(fixture(file));
      const check = (bytes: Uint8Array) => {
        try {
          readTorchPt(bytes, 'dmg.pt');
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toContain('dmg.pt');
        }
      };
      for (let n = 0; n < good.length; n += 7) check(good.subarray(0, n));
      const rand = seededInts(99);
      for (let trial = 0; trial < 300; trial++) {
        const bytes = new Uint8Array(good);
        for (let k = 0; k < 2; k++) bytes[rand(bytes.length)] = rand(256);
        check(bytes);
      }
    });
  }
});

describe('convertFile', () => {
  const tmpdir = useTmpDirs('tk-convert-');

  it('converts .pt (zip and legacy) to safetensors with F32 floats', () => {
    for (const format of ['zip', 'legacy']) {
      const out = path.join(tmpdir(), 'views.safetensors');
      const result = convertFile(fixture(`views_${format}.pt`), out);
      expect(result).toMatchObject({ format: 'pt', tensors: 14, narrowed: ['scalar', 'f64'] });
      const { tensors, metadata } = loadSafetensors(out);
      expect(metadata).toEqual({ converted_from: `views_${format}.pt`, source_format: 'pytorch' });
      expect(tensors.get('f64')).toMatchObject({ dtype: 'F32', shape: [5] });
      expect(values(tensors.get('f64')!)).toEqual([-1, -0.5, 0, 0.5, 1]);
      expect(tensors.get('i64')!.dtype).toBe('I64');
      expect([...tensors.keys()]).toEqual([...loadSafetensors(fixture('views.safetensors')).tensors.keys()]);
    }
  });

  it('rewrites safetensors, keeping metadata and integer tensors', () => {
    const dir = tmpdir();
    const input = path.join(dir, 'in.safetensors');
    saveSafetensors(
      input,
      [
        ['w', f64([2], [0.1, 2])],
        ['n', { dtype: 'I64', shape: [], data: BigInt64Array.from([4n]) }],
      ],
      { model: 'M' },
    );
    const out = path.join(dir, 'out.safetensors');
    expect(convertFile(input, out, { metadata: { note: 'x' } })).toMatchObject({ format: 'safetensors', narrowed: ['w'] });
    const back = loadSafetensors(out);
    expect(back.metadata).toEqual({ model: 'M', converted_from: 'in.safetensors', source_format: 'safetensors', note: 'x' });
    expect(back.tensors.get('w')).toMatchObject({ dtype: 'F32', shape: [2] });
    expect(values(back.tensors.get('w')!)).toEqual([Math.fround(0.1), 2]);
    expect(back.tensors.get('n')!.data).toEqual(BigInt64Array.from([4n]));
    convertFile(input, out, { keepF64: true });
    expect(loadSafetensors(out).tensors.get('w')!.dtype).toBe('F64');
  });

  it('leaves no output when the input is refused', () => {
    const dir = tmpdir();
    const out = path.join(dir, 'out.safetensors');
    expect(() => convertFile(fixture('evil_system_zip.pt'), out)).toThrow(/forbidden global 'posix.system'/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
