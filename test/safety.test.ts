// Nothing lost, nothing silently wrong (issue 14, items 7 to 12): locks around
// a checkpoint path and a package folder, stale temp files swept, NaN weights
// and absurd normalisation refused, own-key strict loads, --epochs 0 --save,
// strict numeric flags, messages that name the thing, model code that exits,
// and one package folder per max batch.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTmpDirs } from './fixtures/io/helpers.js';
import { openModule } from '../src/api/open.js';
import { loadWeights, saveWeights } from '../src/api/workflow.js';
import { float32Flag, intFlag } from '../src/cli/flags.js';
import { buildPackage, packageFolder } from '../src/codegen/build.js';
import { withPackageLock } from '../src/codegen/compile.js';
import { loadModel } from '../src/graph/load.js';
import { trace } from '../src/graph/trace.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { load } from '../src/runtime/index.js';
import { lockCheckpoint, readCheckpoint } from '../src/train/checkpoint.js';
import { fsError, pidAlive, writeFileAtomic } from '../src/util/fs.js';
import { bookModels } from '../models/book.js';

const root = path.resolve(import.meta.dirname, '..');
const hostile = path.join(root, 'test/fixtures/hostile-models.ts');
const tmp = useTmpDirs('tk-safety-');
const norm = { mean: [0.5, 0.5, 0.5] as [number, number, number], std: [0.25, 0.25, 0.25] as [number, number, number] };

function gen(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/gen.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The pid of a process that has exited (for stale locks and temp files). */
function deadPid(): number {
  const r = spawnSync('true');
  expect(pidAlive(r.pid!)).toBe(false);
  return r.pid!;
}

const interpNet = () => openModule(new bookModels.Net(), { backend: 'interp' });

/** A checkpoint of Net with its metadata changed by `edit`, or tensor `fc1.weight` poisoned. */
async function checkpoint(dir: string, edit: (meta: Record<string, string>, t: Map<string, { data: Float32Array }>) => void) {
  const file = path.join(dir, 'ck.safetensors');
  saveWeights(await interpNet(), file, { normalization: norm });
  const { tensors, metadata } = loadSafetensors(file);
  const copy = new Map([...tensors].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
  edit(metadata, copy as unknown as Map<string, { data: Float32Array }>);
  saveSafetensors(file, copy, metadata);
  return file;
}

describe('item 8: non-finite weights and absurd normalisation', () => {
  it('NaN in a weight is an error naming the tensor and the index; allowNonfinite loads it with a loud warning', async () => {
    const file = await checkpoint(tmp(), (_m, t) => {
      t.get('fc1.weight')!.data[5] = NaN;
      t.get('fc2.bias')!.data[0] = -Infinity;
    });
    const net = await interpNet();
    expect(() => loadWeights(net, file)).toThrow(
      /ck\.safetensors: non-finite values in 2 tensor\(s\): 'fc1\.weight' \(1 of 16384, first NaN at index 5\), 'fc2\.bias' \(1 of 2, first -Infinity at index 0\); weights must be finite; allowNonfinite \(--allow-nonfinite\) loads them anyway/,
    );
    const warnings: string[] = [];
    expect(loadWeights(net, file, { allowNonfinite: true, warn: (m) => warnings.push(m) }).normalization).toEqual(norm);
    expect(warnings).toEqual([expect.stringMatching(/non-finite values in 2 tensor\(s\).*loaded anyway \(--allow-nonfinite\)$/)]);
  });

  it.each([
    [
      'std 0',
      '{"mean":[0.5,0.5,0.5],"std":[0,0.2,0.2]}',
      /'normalization' has mean \[0\.5,0\.5,0\.5\] and std \[0,0\.2,0\.2\]: each mean finite, each std finite and above 0/,
    ],
    ['an empty object', '{}', /metadata 'normalization' is malformed: must be \{"mean": \[\.\.\.\], "std": \[\.\.\.\]\}/],
    ['a string list', '{"mean":["a"],"std":[1]}', /is malformed: must be \{"mean"/],
    ['not JSON', '{mean: 1', /metadata 'normalization' must be valid JSON, got "\{mean: 1"/],
    ['1e999 (Infinity)', '{"mean":[1e999,0,0],"std":[1,1,1]}', /each mean finite/],
  ])('normalisation with %s is refused, naming the file and field', async (_what, json, message) => {
    const file = await checkpoint(tmp(), (m) => {
      m.normalization = json;
    });
    expect(() => readCheckpoint(file)).toThrow(message);
  });

  it('normalisation for 1 channel on a 3-channel model, a bad epoch or RNG state: named errors', async () => {
    const net = await interpNet();
    const one = await checkpoint(tmp(), (m) => {
      m.normalization = '{"mean":[0.5],"std":[0.2]}';
    });
    expect(() => loadWeights(net, one)).toThrow(/'normalization' has 1 channel\(s\), the model's input has 3/);
    const epoch = await checkpoint(tmp(), (m) => {
      m.epoch = '-3';
    });
    expect(() => readCheckpoint(epoch)).toThrow(/metadata 'epoch' must be a non-negative integer, got "-3"/);
    const rng = await checkpoint(tmp(), (m) => {
      m.rng_state = '[1,2,3]';
    });
    expect(() => readCheckpoint(rng)).toThrow(/metadata 'rng_state' must be four 32-bit unsigned integers/);
  });

  it('gen predict refuses NaN weights (it printed "airplane (NaN, NaN)") and --allow-nonfinite warns', async () => {
    const file = await checkpoint(tmp(), (_m, t) => t.get('fc2.weight')!.data.fill(NaN));
    const img = path.join(root, 'examples/images/bird.png');
    const r = gen('predict', 'models/book.ts', '--model', 'Net', '--weights', file, img);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^gen: .*non-finite values in 1 tensor\(s\): 'fc2\.weight'/m);
    const w = gen('predict', 'models/book.ts', '--model', 'Net', '--weights', file, '--allow-nonfinite', img);
    expect(w.err).toMatch(/^warning: .*'fc2\.weight'.*loaded anyway/m);
    expect(w.out).toMatch(/bird\.png: .* \(NaN, NaN\)/);
  });
});

describe('item 8: strict key checks use own keys', () => {
  const extra = ['constructor', 'toString', '__proto__'];
  const withExtra = (sd: Map<string, unknown>) => new Map([...sd, ...extra.map((k) => [k, sd.get('fc2.bias')] as const)]);

  it('the interpreter refuses tensors named constructor, toString, __proto__', async () => {
    const net = await interpNet();
    expect(() => net.loadStateDict(withExtra(net.stateDict()) as never)).toThrow(
      /3 problem\(s\):\s+unexpected key 'constructor'\s+unexpected key 'toString'\s+unexpected key '__proto__'/,
    );
  });

  it('a compiled package refuses them too, changing nothing', async () => {
    const dir = buildPackage(trace(new bookModels.Net()), { outRoot: path.join(os.tmpdir(), 'tk-test-safety'), name: 'net' }).dir;
    const m = await load(dir, { init: false });
    const before = m.stateDict().get('fc2.bias')!.data.slice();
    const sd = m.stateDict();
    (sd.get('fc2.bias')!.data as Float32Array).fill(7);
    expect(() => m.loadStateDict(withExtra(sd) as never)).toThrow(/unexpected key 'constructor'[\s\S]*'toString'[\s\S]*'__proto__'/);
    expect(() => m.loadState(new Map([['toString', sd.get('fc2.bias')!]]))).toThrow(/loadState: unknown state 'toString'/);
    expect(m.stateDict().get('fc2.bias')!.data).toEqual(before);
    m.dispose();
  });
});

describe('item 7: one writer per checkpoint path', () => {
  it('a second gen train --save to a path another live process is saving to fails at once, naming the holder', () => {
    const file = path.join(tmp(), 'ck.safetensors');
    const release = lockCheckpoint(file, 'training in this test');
    try {
      const r = gen('train', 'models/book.ts', '--model', 'Net', '--epochs', '1', '--limit', '64', '--save', file);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`gen: ${file} is locked by process ${process.pid} on ${os.hostname()} (training in this test`);
      expect(r.err).toMatch(/another run is saving to it; save to another path, or wait until it ends/);
      expect(fs.existsSync(file)).toBe(false);
    } finally {
      release();
    }
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  it('the lock of a dead process is stale: the next writer takes it over', async () => {
    const file = path.join(tmp(), 'ck.safetensors');
    fs.writeFileSync(`${file}.lock`, JSON.stringify({ pid: deadPid(), host: os.hostname(), what: 'killed', since: '' }));
    saveWeights(await interpNet(), file, { normalization: norm });
    expect(readCheckpoint(file).meta?.normalization).toEqual(norm);
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });
});

describe('item 7: one build per package folder', () => {
  it('a build waits for a live holder of the folder lock, then runs', () => {
    const dir = tmp();
    // our own child: once it exits it is a zombie until reaped, which pidAlive must count as ended
    const holder = spawn('sleep', ['1']);
    fs.writeFileSync(
      path.join(dir, '.build.lock'),
      JSON.stringify({ pid: holder.pid, host: os.hostname(), what: 'building it', since: '' }),
    );
    const ranAfter = withPackageLock(dir, () => !pidAlive(holder.pid!));
    expect(ranAfter).toBe(true);
    expect(fs.existsSync(path.join(dir, '.build.lock'))).toBe(false);
  });

  it('two concurrent gen build of a new package both succeed; one compiles, the other finds it built', async () => {
    const out = tmp();
    const run = () =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(process.execPath, ['bin/gen.js', 'build', 'models/book.ts', '--model', 'Net', '--out', out], { cwd: root });
        let text = '';
        p.stdout.on('data', (d) => (text += d));
        p.stderr.on('data', (d) => (text += d));
        p.on('close', (code) => resolve({ code, out: text }));
      });
    const [a, b] = await Promise.all([run(), run()]);
    expect([a.code, b.code], a.out + b.out).toEqual([0, 0]);
    expect([a.out, b.out].filter((o) => /built, \d+ file\(s\) written/.test(o))).toHaveLength(1);
    expect([a.out, b.out].filter((o) => /up to date \(cache hit\)/.test(o))).toHaveLength(1);
  });
});

describe('item 9: nothing claimed that was not done, no temp debris', () => {
  it('--epochs 0 --save f writes f (the initial state, epoch 0) and says so', () => {
    const file = path.join(tmp(), 'ck.safetensors');
    const r = gen('train', 'models/book.ts', '--model', 'Net', '--epochs', '0', '--limit', '64', '--save', file);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`Saved ${file} (epoch 0)`);
    expect(readCheckpoint(file).meta?.epoch).toBe(0);
  });

  it('a write sweeps the temp files of dead writers of the same file, and only those', () => {
    const dir = tmp();
    const file = path.join(dir, 'ck.safetensors');
    const dead = path.join(dir, `.ck.safetensors.${deadPid()}.abc123.tmp`);
    const live = path.join(dir, `.ck.safetensors.${process.pid}.def456.tmp`);
    const other = path.join(dir, `.other.safetensors.${deadPid()}.abc123.tmp`);
    for (const f of [dead, live, other]) fs.writeFileSync(f, 'partial');
    writeFileAtomic(file, 'done');
    expect([dead, live, other].map((f) => fs.existsSync(f))).toEqual([false, true, true]);
  });
});

describe('item 10: messages name the thing and the place', () => {
  it('writing where a directory is, and the errno causes, name the path', () => {
    const dir = tmp();
    expect(() => writeFileAtomic(dir, 'x')).toThrow(`cannot write ${dir}: it is a directory, not a regular file`);
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(fsError('write', '/runs/ck.safetensors', enospc).message).toBe(
      'cannot write /runs/ck.safetensors: no space left on device (ENOSPC)',
    );
    expect(() => writeFileAtomic(path.join(dir, 'no/such/dir/f'), 'x')).toThrow(
      `cannot write ${path.join(dir, 'no/such/dir/f')}: no such file or directory (ENOENT)`,
    );
  });

  it('Linear(3072, -2), view(-1, -1) and a missing forward are errors naming the layer', async () => {
    const neg = await loadModel(hostile, 'NegativeLinear').catch((e: Error) => e);
    expect(String(neg)).toMatch(/Linear\(3072, -2\): feature counts must be positive integers, got -2/);
    const two = await loadModel(hostile, 'TwoInferred');
    expect(() => trace(two)).toThrow(/view\(-1, -1\) at .*hostile-models\.ts:27: only one dimension can be inferred, and the batch is it/);
    const none = await loadModel(hostile, 'NoForward');
    expect(() => trace(none)).toThrow(/NoForward .*has no forward method/);
  });

  it.each([
    [['--epochs', '-1'], '--epochs must be a non-negative integer, got -1'],
    [['--epochs', '0x10'], "--epochs must be a non-negative integer, got '0x10'"],
    [['--epochs', '1e2'], "--epochs must be a non-negative integer, got '1e2'"],
    [['--lr', '-1'], '--lr must be non-negative, got -1'],
    [['--lr', '1e39'], '--lr 1e39 overflows a float32'],
    [['--lr', 'Infinity'], "--lr must be a decimal number, got 'Infinity'"],
    [['--momentum', '-5'], '--momentum must be non-negative, got -5'],
    [['--limit', '-5'], '--limit must be a positive integer, got -5'],
    [['--batch-size', '0'], '--batch-size must be an integer in [1, 1048576], got 0'],
    [['--seed', '1.5'], "--seed must be an integer in [0, 4294967295], got '1.5'"],
  ])('gen train %j: refused before anything runs', (flags, message) => {
    const r = gen('train', 'models/book.ts', '--model', 'Net', ...flags);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`gen: ${message}`);
  });

  it('the flag parsers: decimal only, ranges, float32', () => {
    expect(intFlag('threads', '2', { min: 1 })).toBe(2);
    expect(() => intFlag('threads', '0', { min: 1, max: 64 })).toThrow('--threads must be an integer in [1, 64], got 0');
    expect(() => intFlag('n', ' ')).toThrow("--n must be an integer, got ' '");
    expect(() => intFlag('n', '0b11')).toThrow(/got '0b11'/);
    expect(float32Flag('lr', '1e-2', { min: 0 })).toBe(0.01);
    expect(float32Flag('lr', '3.4e38')).toBe(3.4e38);
    expect(() => float32Flag('lr', '0x1')).toThrow("--lr must be a decimal number, got '0x1'");
    expect(() => float32Flag('p', '0', { above: 0 })).toThrow('--p must be above 0, got 0');
  });

  it('bench --threads 0 is refused (it printed "Infinity%")', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--threads', '0'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('--threads must be an integer in [1, 64], got 0');
  });
});

describe('item 11: model code that ends the process', () => {
  it('process.exit(0) in a model constructor makes gen fail, not succeed silently', () => {
    const r = gen('inspect', hostile, '--model', 'Quits');
    expect(r.code).toBe(1);
    expect(r.err).toContain("gen: the process exited before 'inspect' finished (did model code call process.exit?)");
  });
});

describe('item 12: one package folder per max batch', () => {
  it('alternating max batches above 256 reuse their own folders instead of rebuilding one', () => {
    const outRoot = tmp();
    const graph = trace(new bookModels.Net());
    const a = buildPackage(graph, { outRoot, name: 'net', maxBatch: 300 });
    const b = buildPackage(graph, { outRoot, name: 'net', maxBatch: 400 });
    expect([path.basename(a.dir), path.basename(b.dir)]).toEqual(['net_b300', 'net_b400']);
    expect([a.cached, b.cached]).toEqual([false, false]);
    expect(buildPackage(graph, { outRoot, name: 'net', maxBatch: 300 }).cached).toBe(true);
    expect(buildPackage(graph, { outRoot, name: 'net', maxBatch: 400 }).cached).toBe(true);
    expect(packageFolder('net', 256)).toBe('net');
  });
});
