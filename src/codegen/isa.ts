// The instruction set a build targets. Builds use -march=native, so a build is
// keyed by the resolved CPU name and its ISA feature flags; a package built on
// one CPU must be rebuilt (not run) on a CPU lacking any of those flags.
// TK_MARCH=<cpu> in the environment builds for another -march instead (e.g.
// x86-64-v3: AVX2 + FMA, to measure the AVX2 kernels on an AVX-512 machine).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** The -march of every build: TK_MARCH from the environment, else native. */
export const MARCH = marchFromEnv(process.env.TK_MARCH);

function marchFromEnv(v: string | undefined): string {
  if (!v) return 'native';
  if (!/^[A-Za-z0-9._-]+$/.test(v)) throw new Error(`TK_MARCH must be a gcc -march value such as x86-64-v3, got ${JSON.stringify(v)}`);
  return v;
}

export interface Isa {
  /** gcc's resolution of -march=native (or TK_MARCH), e.g. 'znver3' */
  march: string;
  /** ISA flags of /proc/cpuinfo that code compiled with -march=native may use */
  flags: string[];
  /** g++ version, part of the cache key */
  compiler: string;
}

const ISA_FLAG = /^(sse|ssse3|avx|fma|f16c|bmi|adx|popcnt|movbe|abm|lzcnt|aes|pclmulqdq|vaes|vpclmulqdq|gfni|sha_ni|amx|cx16|xsave)/;

export function cpuFlags(): Set<string> | null {
  try {
    const m = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? new Set(m[1].trim().split(/\s+/)) : null;
  } catch {
    return null;
  }
}

let cached: Isa | undefined;

export function hostIsa(): Isa {
  if (cached) return cached;
  let march = 'unknown';
  let compiler = 'unknown';
  try {
    const out = execFileSync('gcc', [`-march=${MARCH}`, '-Q', '--help=target'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    march = /^\s*-march=\s*(\S+)/m.exec(out)?.[1] ?? march;
    compiler = execFileSync('g++', ['-dumpfullversion'], { encoding: 'utf8' }).trim();
  } catch {
    /* no gcc: the build itself will say so */
  }
  const flags = [...(cpuFlags() ?? [])].filter((f) => ISA_FLAG.test(f)).sort();
  cached = { march, flags, compiler };
  return cached;
}

/** Flags a build needs that this CPU lacks ([] when it can run here). */
export function missingFlags(isa: Pick<Isa, 'flags'>): string[] {
  const have = cpuFlags();
  if (!have) return [];
  return isa.flags.filter((f) => !have.has(f));
}

/** The vectors the kernels use under MARCH, as tk_runtime.h picks TK_VW: AVX-512 16 lanes, AVX/AVX2 8, else 4. */
export function kernelSimd(): { name: string; lanes: number; fma: boolean } {
  let macros = '';
  try {
    macros = execFileSync('gcc', [`-march=${MARCH}`, '-dM', '-E', '-x', 'c', '/dev/null'], { encoding: 'utf8' });
  } catch {
    /* no gcc: the build itself will say so */
  }
  const fma = /#define __FMA__ /.test(macros);
  if (/#define __AVX512F__ /.test(macros)) return { name: 'AVX-512', lanes: 16, fma };
  if (/#define __AVX2__ /.test(macros)) return { name: 'AVX2', lanes: 8, fma };
  if (/#define __AVX__ /.test(macros)) return { name: 'AVX', lanes: 8, fma };
  return { name: 'SSE/scalar', lanes: 4, fma };
}
