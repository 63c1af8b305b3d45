// Every multi-step golden fixture must keep its float64 trajectory away from ReLU and
// max-pool boundaries: at a near-tie two correct float32 implementations may route a
// gradient differently and drift apart over the steps (tools/pick-step-seeds.ts).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listGoldenCases } from '../src/check/golden.js';
import { replayMargin } from '../tools/export-reference.js';
import { requiredMargin } from '../tools/pick-step-seeds.js';

const extra = path.resolve(import.meta.dirname, 'fixtures/golden-extra');
const cases = listGoldenCases(extra);

describe('golden-extra fixtures are well-conditioned', () => {
  it('finds the fixtures', () => {
    expect(cases.length).toBeGreaterThanOrEqual(2);
  });

  it.each(cases.map((d) => [path.basename(d), d]))('%s: replay margin', { timeout: 600_000 }, (name, dir) => {
    const m = replayMargin(dir, true);
    const need = requiredMargin(m);
    console.log(`${name}: relu ${m.relu.toExponential(3)} maxpool ${m.maxpool.toExponential(3)} (needs ${need.toExponential(0)})`);
    expect(Math.min(m.relu, m.maxpool)).toBeGreaterThanOrEqual(need);
  });
});
