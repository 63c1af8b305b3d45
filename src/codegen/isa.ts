// The instruction set a build targets. Builds use -march=native, so a build is
// keyed by the resolved CPU name and its ISA feature flags; a package built on
// one CPU must be rebuilt (not run) on a CPU lacking any of those flags.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

export interface Isa {
  /** gcc's resolution of -march=native, e.g. 'znver3' */
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
    const out = execFileSync('gcc', ['-march=native', '-Q', '--help=target'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
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
