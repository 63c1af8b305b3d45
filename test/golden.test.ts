// The interpreter against PyTorch: every golden case in ../shared/golden (and
// the multi-step cases of test/fixtures/golden-extra) within the README's tolerances.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReport, listGoldenCases, runGoldenCase, saveGoldenDump } from '../src/check/golden.js';
import { loadSafetensors } from '../src/io/safetensors.js';
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

describe('golden runner', () => {
  it('flags a wrong tensor, names it in the report, and dumps what it computed under io.safetensors names', async () => {
    const dir = path.join(shared, 'Net');
    // An interpreter whose reported fc2.bias gradient is off by 1e-3 (after the step, so the weights stay right).
    const skewed = (graph: Graph) => {
      const it = new Interpreter(graph);
      const step = it.trainStep.bind(it);
      it.trainStep = (...args) => {
        const r = step(...args);
        r.grads.get('fc2.bias')![0] += 1e-3;
        return r;
      };
      return it;
    };
    const report = await runGoldenCase(dir, skewed, { dump: true });
    expect(report.pass).toBe(false);
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(['grad.fc2.bias']);
    const text = formatReport(report, { failuresOnly: true });
    expect(text).toMatch(/^FAIL Net \(Net, batch 8, 1 step\): 20 tensors, 1 failed/);
    expect(text.split('\n')).toHaveLength(3);
    expect(text).toMatch(/grad\.fc2\.bias +2 .* FAIL at \[0\]/);

    const ioNames = [...loadSafetensors(path.join(dir, 'io.safetensors')).tensors.keys()].filter((n) => n !== 'x' && n !== 'labels');
    expect([...report.computed!.keys()].sort()).toEqual(ioNames.sort());
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-golden-')), 'dump.safetensors');
    saveGoldenDump(report, file);
    const back = loadSafetensors(file).tensors;
    expect(back.get('grad.fc2.bias')!.dtype).toBe('F64');
    expect(back.get('after.fc2.bias')!.dtype).toBe('F32');

    const loose = await runGoldenCase(dir, skewed, { tolerances: { grad: { mode: 'tensor', atol: 1e-2, rtol: 0 } } });
    expect(loose.pass).toBe(true);
  });

  it('runs an eval-only case: logits_eval alone', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-eval-'));
    for (const f of ['weights.safetensors', 'io.safetensors']) fs.copyFileSync(path.join(shared, 'Net', f), path.join(dir, f));
    const json = JSON.parse(fs.readFileSync(path.join(shared, 'Net', 'case.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'case.json'), JSON.stringify({ ...json, eval_only: true }));
    const report = await runGoldenCase(dir, interpreter);
    expect(report.checks.map((c) => [c.name, c.pass])).toEqual([['logits_eval', true]]);
    expect(report.steps).toBe(0);
  });
});
