// gen graph: the traced model as a diagram laid out by Graphviz (SVG or PNG).
import type { Command } from 'commander';
import { modelFrom, modelOptions, type ModelOptions } from './common.js';
import { example } from './help.js';

export function register(program: Command): void {
  modelOptions(
    example(
      program
        .command('graph <model.ts>')
        .description('draw the traced graph: layers, output shapes, parameters, skip connections, repeated blocks as ×N'),
      'gen graph model.ts --model NetResDeep --out net.svg',
    ),
  )
    .requiredOption('--out <file.svg|png>', 'the diagram')
    .option('--expand', 'draw every call of a repeated block')
    .action(async (file: string, o: ModelOptions & { out: string; expand?: boolean }) => {
      const { graph } = await modelFrom(file, o);
      const [{ graphSvg, repeats }, { writeFigure }] = await Promise.all([import('../viz/graph.js'), import('../viz/render.js')]);
      await writeFigure(o.out, await graphSvg(graph, { expand: o.expand }), 1.5);
      const reps = o.expand ? [] : repeats(graph);
      const folded = reps.map((r) => `${r.calls[0].type} ×${r.calls.length}`).join(', ');
      process.stdout.write(`wrote ${o.out}: ${graph.name}, ${graph.nodes.length} nodes${folded ? `, drawn once: ${folded}` : ''}\n`);
    });
}
