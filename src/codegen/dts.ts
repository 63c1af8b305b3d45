// The generated package's index.d.ts: the typed surface of index.js, with the
// model's shapes in the doc comments (templates/js/index.d.ts.hbs).
import type { Graph } from '../graph/ir.js';
import { render } from './templates.js';

/** `cuda`: the CUDA package's wrapper (device instead of threads, no CPU feature check). */
export function emitDts(graph: Graph, prefix: string, version: string, cuda = false): string {
  const [inC, inH, inW] = graph.inputShape;
  const classes = graph.nodes[graph.output].shape[0];
  return render('js/index.d.ts.hbs', { prefix, model: graph.name, version, inC, inH, inW, perSample: inC * inH * inW, classes, cuda });
}
