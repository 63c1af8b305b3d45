// Compiles a generated package with cmake-js (offline: the package.json of the
// package has "binary": {"napi_versions": [8]}), and records what it was built
// for in build/manifest.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { writeFileAtomic } from '../util/fs.js';
import { withLock } from '../util/lock.js';
import { hostIsa, MARCH, type Isa } from './isa.js';

const require = createRequire(import.meta.url);

export { MARCH };
/** Compiler flags of the kernels (templates/cmake), part of the cache key. */
export const CXX_FLAGS = `-O3 -march=${MARCH} -std=c++17 -fopenmp`;

export interface Manifest {
  key: string;
  model: string;
  name: string;
  prefix: string;
  isa: Isa;
  flags: string;
  builtAt: string;
}

export function cmakeJsBin(): string {
  return path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
}

export function readManifest(dir: string): Manifest | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'build', 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

export function addonPath(dir: string, prefix: string): string {
  return path.join(dir, 'build', 'Release', `${prefix}.node`);
}

/** node-addon-api's include folder, resolved from tensorkiln (packages may live outside its tree). */
function napiDir(): string {
  return path.dirname(require.resolve('node-addon-api/package.json'));
}

/** `cmake-js compile` of the package in `dir` into dir/build with extra -D definitions; throws with the compiler's output on failure. */
export function cmakeJsCompile(dir: string, defines: Record<string, string>): void {
  const d = Object.entries({ ...defines, TK_NAPI_DIR: napiDir() }).map(([k, v]) => `--CD${k}=${v}`);
  const r = spawnSync(
    process.execPath,
    [cmakeJsBin(), 'compile', '-d', dir, '-O', path.join(dir, 'build'), '-p', '2', '-l', 'error', ...d],
    {
      encoding: 'utf8',
      cwd: dir,
    },
  );
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(`compiling ${dir} failed (cmake-js exit ${r.status ?? r.signal}):\n${out}`);
  }
}

/** How long a build waits for another process building the same package folder. */
export const BUILD_LOCK_WAIT_MS = 20 * 60_000;

/**
 * Runs `fn` holding the build lock of package folder `dir` (<dir>/.build.lock):
 * two processes building one package take turns (CMake's configure step races
 * otherwise), and the second then finds the first's build up to date.
 */
export function withPackageLock<T>(dir: string, fn: () => T): T {
  fs.mkdirSync(dir, { recursive: true });
  return withLock(path.join(dir, '.build.lock'), dir, { what: 'building it', waitMs: BUILD_LOCK_WAIT_MS }, fn);
}

/** Runs cmake-js in `dir` and records what the build was made for. */
export function compilePackage(dir: string, meta: { key: string; model: string; name: string; prefix: string }): Manifest {
  return withPackageLock(dir, () => {
    cmakeJsCompile(dir, { TK_MARCH: MARCH });
    const manifest: Manifest = { ...meta, isa: hostIsa(), flags: CXX_FLAGS, builtAt: new Date().toISOString() };
    writeFileAtomic(path.join(dir, 'build', 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    return manifest;
  });
}
