// gen inspect: each layer's output shape and parameter count, and the totals.
import type { Command } from 'commander';
import { formatShape, numel, type Graph } from '../graph/ir.js';
import { modelFrom, modelOptions, type ModelOptions } from './common.js';
import { example } from './help.js';

export interface Inspection {
  model: string;
  input: number[];
  params: { name: string; shape: number[]; numel: number }[];
  total: number;
  layers: { id: number; op: string; module: string; shape: number[]; params: number; source: string }[];
  buffers: { name: string; shape: number[]; dtype: string }[];
}

export function inspectGraph(g: Graph): Inspection {
  const params = g.state.filter((s) => s.kind === 'param').map((s) => ({ name: s.name, shape: s.shape, numel: numel(s.shape) }));
  const size = new Map(params.map((p) => [p.name, p.numel]));
  // A shared parameter is counted at its first use only, so the column sums to the total.
  const counted = new Set<string>();
  const layers = g.nodes.map((n) => {
    let count = 0;
    for (const p of n.params)
      if (size.has(p) && !counted.has(p)) {
        counted.add(p);
        count += size.get(p)!;
      }
    return { id: n.id, op: n.op, module: n.module, shape: n.shape, params: count, source: n.source };
  });
  return {
    model: g.name,
    input: g.inputShape,
    params,
    total: params.reduce((a, p) => a + p.numel, 0),
    layers,
    buffers: g.state.filter((s) => s.kind === 'buffer').map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype })),
  };
}

export function formatInspection(r: Inspection): string {
  const rows = r.layers.map((l) => [String(l.id), l.op, l.module || '-', formatShape(l.shape), l.params ? String(l.params) : '', l.source]);
  const head = ['#', 'op', 'module', 'output', 'params', 'source'];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i]))
      .join('  ')
      .trimEnd();
  return [
    `${r.model}, input ${formatShape(r.input)}`,
    line(head),
    ...rows.map(line),
    '',
    `parameters: [${r.params.map((p) => p.numel).join(',')}]`,
    `total: ${r.total}`,
  ].join('\n');
}

export function register(program: Command): void {
  modelOptions(
    example(
      program.command('inspect <model.ts>').description("show each layer's output shape and parameter count"),
      'gen inspect model.ts',
      'gen inspect model.ts --model NetResDeep --args \'{"nBlocks":100}\' --json',
    ),
  )
    .option('--json', 'print JSON: {"params":[{"name","shape","numel"}],"total":N,...}')
    .action(async (file: string, o: ModelOptions & { json?: boolean }) => {
      const { graph } = await modelFrom(file, o);
      const r = inspectGraph(graph);
      process.stdout.write((o.json ? JSON.stringify(r, null, 2) : formatInspection(r)) + '\n');
    });
}
