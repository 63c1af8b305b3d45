// The short fuzz run of CI (`npm run fuzz` is the long one, >= 1,000,000
// inputs): every parser of untrusted bytes takes its real seeds, its kept
// regression inputs and a few thousand mutations of them (a fixed seed, so
// the run repeats) without a crash, a hang over 1 s or a 1 GB blow-up.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { check, fuzz, regressions } from '../fuzz/engine.js';
import { SOURCE, targets, type Target } from '../fuzz/targets.js';

const RUNS = 2000;

describe.each(targets.map((t) => [t.name, t] as const))('fuzz target %s', (_name, t) => {
  it('parses or cleanly refuses its seeds and kept regression inputs', () => {
    const inputs = [...t.seeds(), ...regressions(t.name).map((f) => new Uint8Array(fs.readFileSync(f)))];
    expect(inputs.length).toBeGreaterThan(0);
    for (const b of inputs) expect(check(t, b)).toBeUndefined();
  });

  it(`survives ${RUNS} mutated inputs`, () => {
    const r = fuzz(t, RUNS, 14);
    expect(r.finding).toBeUndefined();
    expect(r.ran).toBe(RUNS);
  });
});

describe('the fuzz oracle', () => {
  const fake = (run: (b: Uint8Array) => void): Target => ({ name: 'fake', seeds: () => [new Uint8Array(4)], run });

  it('tells a located refusal from a crash', () => {
    expect(
      check(
        fake(() => {
          throw new Error(`${SOURCE}: bad header`);
        }),
        new Uint8Array(1),
      ),
    ).toBeUndefined();
    expect(
      check(
        fake((b) => void new DataView(b.buffer).getUint32(8)),
        new Uint8Array(1),
      ),
    ).toMatchObject({ kind: 'crash', message: /RangeError/ });
    expect(
      check(
        fake(() => {
          throw new Error('bad header');
        }),
        new Uint8Array(1),
      ),
    ).toMatchObject({ kind: 'crash' });
  });

  it('tells a hang and a blow-up', () => {
    expect(
      check(
        fake(() => {
          const end = Date.now() + 1100;
          while (Date.now() < end);
        }),
        new Uint8Array(1),
      ),
    ).toMatchObject({ kind: 'hang' });
    expect(
      check(
        fake(() => void new Uint8Array(1100 * 2 ** 20).fill(1)),
        new Uint8Array(1),
      ),
    ).toMatchObject({ kind: 'memory' });
  });
});
