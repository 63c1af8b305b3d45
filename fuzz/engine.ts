// The fuzzing engine: fast-check properties over mutations of each target's
// seeds (bit flips, byte sets, "interesting" integers, inserted, deleted and
// duplicated ranges, truncation), so that a failure shrinks to a small input.
// Every input must be refused cleanly (targets.ts), within 1 s, and without the
// process growing by 1 GB; a failing input is written to fuzz/crashes/<target>/.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { isCleanRefusal, type Target } from './targets.js';

export const FUZZ_DIR = path.dirname(fileURLToPath(import.meta.url));
export const HANG_MS = 1000;
export const MAX_GROWTH_BYTES = 1024 * 1024 * 1024;

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'int'; at: number; value: number; width: 2 | 4 | 8; big: boolean }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'dup'; at: number; len: number; to: number }
  | { kind: 'truncate'; at: number };

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 53 - 1];

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  fc.record({
    kind: fc.constant('int' as const),
    at: fc.nat(),
    value: fc.constantFrom(...INTERESTING),
    width: fc.constantFrom(2 as const, 4 as const, 8 as const),
    big: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 256 }), to: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function apply(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  if (n === 0) return m.kind === 'insert' ? m.bytes : input;
  const at = m.at % n;
  switch (m.kind) {
    case 'flip': {
      const out = input.slice();
      out[at] ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      const out = input.slice();
      out[at] = m.value;
      return out;
    }
    case 'int': {
      const out = input.slice();
      const v = BigInt(m.value);
      for (let i = 0; i < m.width && at + i < n; i++) out[at + (m.big ? m.width - 1 - i : i)] = Number((v >> BigInt(8 * i)) & 0xffn);
      return out;
    }
    case 'insert':
      return concat(input.subarray(0, at), m.bytes, input.subarray(at));
    case 'delete':
      return concat(input.subarray(0, at), input.subarray(at + m.len));
    case 'dup': {
      const piece = input.subarray(at, at + m.len);
      const to = m.to % n;
      return concat(input.subarray(0, to), piece, input.subarray(to));
    }
    case 'truncate':
      return input.slice(0, at);
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An input: one seed under 0 to 8 mutations. */
export function inputs(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({ seed: fc.nat({ max: seeds.length - 1 }), mutations: fc.array(mutation, { maxLength: 8 }) })
    .map(({ seed, mutations }) => mutations.reduce(apply, seeds[seed]));
}

export interface Finding {
  target: string;
  kind: 'crash' | 'hang' | 'memory';
  message: string;
  file?: string;
}

/**
 * Resident bytes now, after resetting the kernel's peak (Linux: writing 5 to
 * /proc/self/clear_refs resets VmHWM), so that peakSinceReset() sees what one
 * input allocated, freed or not, and not the garbage of earlier ones.
 */
function resetPeak(): number {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the growth of the resident size is all we can see
  }
  return process.memoryUsage.rss();
}

function peakSinceReset(): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  } catch {
    return process.memoryUsage.rss();
  }
}

/** Runs one input; returns what went wrong, or undefined when it was parsed or refused cleanly. */
export function check(t: Target, bytes: Uint8Array): Omit<Finding, 'target' | 'file'> | undefined {
  const before = resetPeak();
  const t0 = performance.now();
  let thrown: unknown;
  let threw = false;
  try {
    t.run(bytes);
  } catch (e) {
    threw = true;
    thrown = e;
  }
  const ms = performance.now() - t0;
  if (threw && !isCleanRefusal(thrown))
    return {
      kind: 'crash',
      message: thrown instanceof Error ? `${thrown.name}: ${thrown.message}`.slice(0, 500) : `threw ${String(thrown)}`,
    };
  // a blow-up first: filling a gigabyte can also take over a second on a loaded machine
  const growth = peakSinceReset() - before;
  if (growth > MAX_GROWTH_BYTES)
    return { kind: 'memory', message: `resident memory peaked ${Math.round(growth / 2 ** 20)} MiB above its start` };
  if (ms > HANG_MS) return { kind: 'hang', message: `took ${Math.round(ms)} ms` };
  return undefined;
}

/** Writes a failing input under fuzz/crashes/<target>/ (move it to regressions/ once fixed). */
function keep(target: string, bytes: Uint8Array, f: Omit<Finding, 'target' | 'file'>): string {
  const dir = path.join(FUZZ_DIR, 'crashes', target);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${crypto.createHash('sha1').update(bytes).digest('hex').slice(0, 16)}.bin`);
  fs.writeFileSync(file, bytes);
  fs.writeFileSync(`${file}.txt`, `${f.kind}: ${f.message}\n`);
  return file;
}

/** Fuzzes `t` with `runs` inputs; returns the inputs run and the (shrunk) failure, if any. */
export function fuzz(t: Target, runs: number, seed: number): { ran: number; finding?: Finding } {
  const seeds = t.seeds();
  if (!seeds.length) throw new Error(`fuzz target ${t.name} has no seeds`);
  let ran = 0;
  const result = fc.check(
    fc.property(inputs(seeds), (bytes) => {
      ran++;
      const f = check(t, bytes);
      if (f) throw new Error(`${f.kind}: ${f.message}`);
    }),
    { numRuns: runs, seed, endOnFailure: false },
  );
  if (!result.failed) return { ran };
  const bytes = result.counterexample![0];
  const f = check(t, bytes) ?? { kind: 'crash' as const, message: String(result.errorInstance) };
  return { ran, finding: { target: t.name, ...f, file: keep(t.name, bytes, f) } };
}

/** The kept regression inputs of a target (fuzz/regressions/<target>/*.bin). */
export function regressions(target: string): string[] {
  const dir = path.join(FUZZ_DIR, 'regressions', target);
  return fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.bin'))
        .map((f) => path.join(dir, f))
    : [];
}
