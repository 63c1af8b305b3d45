// gen inspect: each layer's output shape and parameter count, and the totals.
import type { Command } from 'commander';
import { bytesText, describeNode, multAdds, outputBytes, paramCounts, si } from '../graph/describe.js';
import { formatShape, numel, type Graph } from '../graph/ir.js';
import { modelFrom, modelOptions, type ModelOptions } from './common.js';
import { example } from './help.js';

export interface Inspection {
  model: string;
  input: number[];
  params: { name: string; shape: number[]; numel: number }[];
  total: number;
  layers: {
    id: number;
    op: string;
    module: string;
    shape: number[];
    params: number;
    source: string;
    /** 'Conv2d 3→16, 3×3, pad 1' */
    layer: string;
    /** multiply-adds per image (conv and linear) */
    multAdds: number;
    /** bytes per image of the float32 output (views: 0) */
    outputBytes: number;
  }[];
  buffers: { name: string; shape: number[]; dtype: string }[];
  /** per image: multiply-adds of the forward, bytes of every layer's output */
  multAdds: number;
  activationBytes: number;
  paramBytes: number;
}

export function inspectGraph(g: Graph): Inspection {
  const params = g.state.filter((s) => s.kind === 'param').map((s) => ({ name: s.name, shape: s.shape, numel: numel(s.shape) }));
  const counts = paramCounts(g);
  const layers = g.nodes.map((n) => ({
    id: n.id,
    op: n.op,
    module: n.module,
    shape: n.shape,
    params: counts[n.id],
    source: n.source,
    layer: describeNode(n),
    multAdds: multAdds(n),
    outputBytes: outputBytes(n),
  }));
  const total = params.reduce((a, p) => a + p.numel, 0);
  return {
    model: g.name,
    input: g.inputShape,
    params,
    total,
    layers,
    buffers: g.state.filter((s) => s.kind === 'buffer').map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype })),
    multAdds: layers.reduce((a, l) => a + l.multAdds, 0),
    activationBytes: layers.reduce((a, l) => a + l.outputBytes, 0),
    paramBytes: 4 * total,
  };
}

export function formatInspection(r: Inspection): string {
  const rows = r.layers.map((l) => [
    String(l.id),
    l.module || '-',
    l.layer,
    formatShape(l.shape),
    l.params ? String(l.params) : '',
    l.multAdds ? si(l.multAdds) : '',
    l.outputBytes ? bytesText(l.outputBytes) : '',
    l.source,
  ]);
  const head = ['#', 'module', 'layer', 'output', 'params', 'mult-adds', 'output size', 'source'];
  const right = new Set([4, 5, 6]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(width[i]) : c.padEnd(width[i])))
      .join('  ')
      .trimEnd();
  return [
    `${r.model}, input ${formatShape(r.input)}`,
    line(head),
    ...rows.map(line),
    '',
    `parameters: [${r.params.map((p) => p.numel).join(',')}]`,
    `total: ${r.total}`,
    `per image: ${si(r.multAdds)} mult-adds (conv and linear), ${bytesText(r.activationBytes)} of layer outputs (training keeps them for the backward), ${bytesText(r.paramBytes)} of parameters`,
  ].join('\n');
}

export function register(program: Command): void {
  modelOptions(
    example(
      program
        .command('inspect <model.ts>')
        .description("each layer's output shape, parameters, multiply-adds and output size (a torchinfo-style summary)"),
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
