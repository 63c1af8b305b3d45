// The code generator: compiled CPU models against PyTorch's golden cases,
// committed packages up to date, kernels deduplicated by signature.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatePackage } from '../src/codegen/build.js';
import { plan } from '../src/codegen/cpu/plan.js';
import { formatReport, listGoldenCases, runGoldenCase } from '../src/check/golden.js';
import { trace } from '../src/graph/trace.js';
import { compiledBackend } from '../src/runtime/backend.js';
import { bookModels, Net } from '../models/book.js';
import type { Node } from '../src/graph/ir.js';

const root = path.resolve(import.meta.dirname, '..');
const shared = path.resolve(root, '../shared/golden');
const extra = path.resolve(root, 'test/fixtures/golden-extra');
const cases = [...listGoldenCases(shared), ...(fs.existsSync(extra) ? listGoldenCases(extra) : [])];
const outRoot = path.join(os.tmpdir(), 'tk-test-codegen');

describe('compiled CPU vs PyTorch golden cases', () => {
  it('has the shared cases', () => expect(cases.length).toBeGreaterThanOrEqual(7));
  it.each(cases.map((d) => [path.basename(d), d]))('%s', async (_n, dir) => {
    const report = await runGoldenCase(dir, (graph) => compiledBackend(graph, { outRoot }));
    if (!report.pass) console.log(formatReport(report, { failuresOnly: true }));
    expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual([]);
  });
});

describe('committed generated packages', () => {
  const names = Object.keys(bookModels) as (keyof typeof bookModels)[];
  it.each(names)('generated/%s is what the generator writes now (run `gen build models/book.ts --model <Name>` if not)', (name) => {
    const graph = trace(new bookModels[name]());
    const dir = path.join(root, 'generated', name.toLowerCase());
    const files = generatePackage(graph, name.toLowerCase(), 256, { file: 'models/book.ts', model: name });
    for (const [rel, content] of files) {
      const f = path.join(dir, rel);
      expect(fs.existsSync(f), `${f} missing`).toBe(true);
      expect(fs.readFileSync(f, 'utf8') === content, `${f} is out of date`).toBe(true);
    }
  });
});

describe('kernel deduplication', () => {
  it('NetResDeep: one residual conv kernel for any depth; source grows with a table row per block, not code', () => {
    const src = (nBlocks: number) => {
      const graph = trace(new bookModels.NetResDeep({ nBlocks }));
      const p = plan(graph);
      return { p, cpp: generatePackage(graph, `netresdeep_${nBlocks}`).get(`tk_netresdeep_${nBlocks}.cpp`)! };
    };
    const a = src(10);
    const b = src(100);
    const kinds = (p: typeof a.p) => p.kernels.map((k) => k.signature).sort();
    expect(kinds(b.p)).toEqual(kinds(a.p));
    const resConv = a.p.kernels.filter((k) => k.kind === 'conv_fwd' && k.consts.find((c) => c[0] === 'CI')![1] === 32);
    expect(resConv).toHaveLength(1);
    expect((b.cpp.match(/void k\d+_/g) ?? []).length).toBe((a.cpp.match(/void k\d+_/g) ?? []).length);
    // 90 more blocks add 90 rows of buffer offsets to the loop tables (18 integers a block), no code
    const growth = b.cpp.length - a.cpp.length;
    console.log(`tk_netresdeep.cpp: ${a.cpp.length} B at 10 blocks, ${b.cpp.length} B at 100 blocks`);
    expect(growth / 90).toBeLessThan(400);
    expect(b.cpp.split('\n').length - a.cpp.split('\n').length).toBe(0);
  });
});

describe('the CPU planner refuses what it does not know', () => {
  it('an unknown op is an error naming the op and its model.ts line, not a copy', () => {
    const g = trace(new Net());
    const relu = g.nodes.findIndex((n) => n.op === 'unary');
    const forged = {
      ...g,
      nodes: g.nodes.map((n, i) => (i === relu ? ({ ...n, op: 'roll', source: 'models/x.ts:7' } as unknown as Node) : n)),
    };
    expect(() => plan(forged)).toThrow(/no op 'roll' .*at models\/x\.ts:7/);
  });
});
