// Native lifecycle of a compiled package: worker_threads exit and terminate
// never crash the process, dispose() frees a model at once, and the native
// bytes are visible to the garbage collector (issue 14, items 1, 2 and 6).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '../src/codegen/build.js';
import { numel } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { load, type CompiledModel } from '../src/runtime/index.js';
import { bookModels } from '../models/book.js';

const outRoot = path.join(os.tmpdir(), 'tk-test-lifecycle');
const fixtures = path.resolve(import.meta.dirname, 'fixtures/lifecycle');
let dir = '';

function node(script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(fixtures, script), dir, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  dir = buildPackage(trace(new bookModels.Net()), { outRoot, name: 'net' }).dir;
});

describe('worker_threads', () => {
  it('a worker that ran batch >= 2 calls exits without taking the process down, and leaves no thread behind', () => {
    const r = node('worker-exit.mjs');
    expect(r.out).toMatch(/main alive/);
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
    const [, before, after] = /threads before (\d+) after (\d+)/.exec(r.out)!.map(Number);
    expect(after).toBeLessThanOrEqual(before);
  });

  it('worker.terminate() during trainEpoch ends the worker, not the process', () => {
    const r = node('worker-terminate.mjs');
    expect(r.out).not.toMatch(/terminate called|Napi::Error/);
    expect(r.out.match(/terminated with code 1/g)).toHaveLength(3);
    expect({ status: r.status, signal: r.signal }).toEqual({ status: 0, signal: null });
  });
});

describe('dispose and native memory', () => {
  let net: CompiledModel;
  beforeAll(async () => {
    net = await load(dir, { init: false });
  });

  it('reports at least its arena and parameter buffers as native bytes', () => {
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'tensorkiln.json'), 'utf8')) as {
      arenaBytesPerSample: number;
      maxBatch: number;
      state: { shape: number[] }[];
    };
    const params = info.state.reduce((a, s) => a + numel(s.shape), 0);
    // arena for maxBatch samples, then parameters, gradients and momentum
    expect(net.nativeBytes).toBeGreaterThanOrEqual(info.arenaBytesPerSample * info.maxBatch + 3 * 4 * params);
  });

  it('dispose() frees the model; every later call is a JS error, a second dispose() is harmless', async () => {
    const m = await load(dir, { init: false });
    m.dispose();
    expect(m.disposed).toBe(true);
    expect(m.nativeBytes).toBe(0);
    expect(() => m.forward(new Float32Array(3072), 1)).toThrow(/Net: this model was disposed/);
    expect(() => m.stateDict()).toThrow(/disposed/);
    expect(() => m.trainStep(new Float32Array(3072), new Int32Array(1), 1, { lr: 0.1 })).toThrow(/disposed/);
    expect(() => m.maxBatch).toThrow(/disposed/);
    expect(() => m.dispose()).not.toThrow();
  });

  it('Symbol.dispose is dispose()', async () => {
    const m = await load(dir, { init: false });
    m[Symbol.dispose]();
    expect(m.disposed).toBe(true);
  });

  // 200 models of ~30 MB each: 6 GB if none were freed
  const loop = (mode: string) => {
    const r = node('create-loop.mjs', mode, '200');
    expect(r.status, r.out).toBe(0);
    const [, rss, space] = /peak (\d+) MiB, address space \+(\d+) MiB/.exec(r.out)!.map(Number);
    return { rss, space };
  };

  it('a loop creating models and leaving them to the GC stays bounded (the GC sees their native bytes)', () => {
    const { rss, space } = loop('gc');
    expect(rss).toBeLessThan(600);
    expect(space).toBeLessThan(1500);
  });

  it('a synchronous loop that disposes its models holds one at a time', () => {
    const { rss, space } = loop('dispose');
    expect(rss).toBeLessThan(600);
    expect(space).toBeLessThan(200);
  });
});
