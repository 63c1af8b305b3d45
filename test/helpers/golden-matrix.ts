// Runs a folder of golden cases (PyTorch reference data) on several backends,
// one test per case and backend (test/golden-*.test.ts).
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BackendFactory } from '../../src/check/backend.js';
import { formatReport, listGoldenCases, runGoldenCase } from '../../src/check/golden.js';
import type { Module } from '../../src/graph/module.js';
import { Interpreter } from '../../src/interp/index.js';
import { compiledBackend, cudaBackend } from '../../src/runtime/backend.js';

const outRoot = path.join(os.tmpdir(), 'tk-test-golden');

export const factories: Record<string, BackendFactory> = {
  interp: (g) => new Interpreter(g),
  cpu: (g, n) => compiledBackend(g, { outRoot, maxBatch: 8, inputGrad: n?.inputGrad, taps: n?.taps }),
  'cuda-emu': (g, n) => cudaBackend(g, { outRoot, maxBatch: 8, emulator: true, inputGrad: n?.inputGrad, taps: n?.taps }),
};

/** One test per (backend, case) of `root`; `minCases` guards against a missing fixture folder. */
export function goldenMatrix(root: string, models: Record<string, unknown>, backends: string[], minCases: number): void {
  const cases = listGoldenCases(root).map((d) => [path.basename(d), d] as const);
  it(`has at least ${minCases} cases`, () => expect(cases.length).toBeGreaterThanOrEqual(minCases));
  describe.each(backends)('%s', (backend) => {
    it.each(cases)('%s', async (name, dir) => {
      const r = await runGoldenCase(dir, factories[backend], { models: models as Record<string, new () => Module> });
      if (!r.pass) console.log(formatReport(r, { failuresOnly: true }));
      expect(r.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
      // every backend replays PyTorch's dropout masks: nothing is skipped
      expect(r.checks.filter((c) => c.skipped).map((c) => c.name)).toEqual([]);
    });
  });
}
