// The interpreter against PyTorch: every golden case in ../shared/golden (and
// the multi-step cases of test/fixtures/golden-extra) within the README's tolerances.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReport, listGoldenCases, runGoldenCase } from '../src/check/golden.js';
import type { Graph } from '../src/graph/ir.js';
import { Interpreter } from '../src/interp/index.js';

const shared = path.resolve(import.meta.dirname, '../../shared/golden');
const extra = path.resolve(import.meta.dirname, 'fixtures/golden-extra');
const cases = [...listGoldenCases(shared), ...listGoldenCases(extra)];

const interpreter = (graph: Graph) => new Interpreter(graph);

describe('golden cases: interpreter vs PyTorch', () => {
  it('finds the shared cases', () => {
    expect(listGoldenCases(shared).map((d) => path.basename(d))).toEqual(
      expect.arrayContaining(['Net', 'NetWidth', 'NetDepth', 'NetRes', 'NetBatchNorm', 'Net_wd', 'Net_l2']),
    );
  });

  it.each(cases.map((d) => [path.basename(d), d]))('%s', async (_name, dir) => {
    const report = await runGoldenCase(dir, interpreter);
    console.log(formatReport(report));
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
  });
});
