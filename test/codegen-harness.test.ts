import fs from 'node:fs';
// The generated packages stand alone: test/harness builds them with plain CMake
// (no Node) and drives forward / train_step / train_epoch and the error paths
// through the C API, also under AddressSanitizer + UndefinedBehaviorSanitizer.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { zooModels } from '../models/zoo.js';
import { generatePackage, writeFiles } from '../src/codegen/build.js';
import { trace } from '../src/graph/trace.js';

const root = path.resolve(import.meta.dirname, '..');
const names = ['net', 'netwidth', 'netdropout', 'netbatchnorm', 'netdepth', 'netres', 'netresdeep'];
// Zoo models cover the kernels the book's do not: strided and 1x1 convs, depthwise
// groups, a broadcast gate, global pooling. Generated here (not committed).
const zoo = ['SEResNet8', 'MobileNetSmall'] as const;

function zooPackage(name: (typeof zoo)[number]): string {
  const dir = path.join(os.tmpdir(), `tk-harness-pkg-${name.toLowerCase()}`);
  const files = generatePackage(trace(new zooModels[name]()), name.toLowerCase(), 64, { file: 'models/zoo.ts', model: name });
  writeFiles(dir, files);
  return dir;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`.slice(-4000));
  return `${r.stdout}${r.stderr}`;
}

function harness(name: string, sanitize: boolean, pkg = path.join(root, 'generated', name)): string {
  const build = path.join(os.tmpdir(), `tk-harness-${name}${sanitize ? '-asan' : ''}`);
  // A cache left by a checkout elsewhere would make cmake refuse this source dir.
  fs.rmSync(build, { recursive: true, force: true });
  run('cmake', [
    '-S',
    path.join(root, 'test/harness'),
    '-B',
    build,
    `-DTK_PACKAGE=${pkg}`,
    `-DTK_PREFIX=tk_${name}`,
    `-DTK_SANITIZE=${sanitize ? 'ON' : 'OFF'}`,
  ]);
  const out = run('cmake', ['--build', build, '-j', '2']);
  expect(out).not.toMatch(/warning:/);
  return path.join(build, 'harness');
}

describe('standalone C harness (plain CMake, no Node)', () => {
  it.each(names)('%s builds warning-free and runs', (name) => {
    expect(run(harness(name, false), ['check'])).toMatch(/^ok checksum /);
  });
});

describe('AddressSanitizer + UndefinedBehaviorSanitizer', () => {
  const cases = [...names.map((n) => [n, undefined] as const), ...zoo.map((z) => [z.toLowerCase(), z] as const)];
  it.each(cases)('%s is clean', (name, zooName) => {
    const out = run(harness(name, true, zooName && zooPackage(zooName)), ['check'], {
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
      OMP_NUM_THREADS: '2',
    });
    expect(out).toMatch(/^ok checksum /);
    expect(out).not.toMatch(/runtime error|AddressSanitizer/);
  });
});
