// The traced graph as a Graphviz diagram (gen graph): one box per op with its
// module, what it is, its output shape and parameters; skip connections drawn as
// such, and a block called several times in a row (one shared instance, as the
// book's NetResDeep) drawn once inside a frame marked ×N. Laid out by Graphviz (WebAssembly).
import { describeNode, paramCounts } from '../graph/describe.js';
import type { Graph, ModuleCall, Node } from '../graph/ir.js';
import { FONT } from './render.js';

/** Consecutive calls of one module instance, each starting where the last one ended, by one caller. */
export interface Repeat {
  calls: ModuleCall[];
  /** the caller's path ('resblocks') */
  parent: string;
}

const parentOf = (path: string) => path.slice(0, Math.max(0, path.lastIndexOf('.')));

/** The repeated blocks of a graph: maximal runs of 2 or more calls (outermost runs only). */
export function repeats(g: Graph): Repeat[] {
  const calls = [...(g.calls ?? [])].filter((c) => c.first <= c.output).sort((a, b) => a.first - b.first || b.output - a.output);
  const out: Repeat[] = [];
  const covered = (c: ModuleCall) => out.some((r) => c.first >= r.calls[0].first && c.output <= r.calls[r.calls.length - 1].output);
  for (const c of calls) {
    if (covered(c)) continue;
    const run = [c];
    for (;;) {
      const last = run[run.length - 1];
      const next = calls.find((d) => d.module === c.module && d.first === last.output + 1 && parentOf(d.path) === parentOf(c.path));
      if (!next) break;
      run.push(next);
    }
    if (run.length > 1) out.push({ calls: run, parent: parentOf(c.path) });
  }
  return out;
}

const COLORS: Record<string, string> = {
  input: '#eeeeee',
  conv2d: '#cfe2f3',
  linear: '#d9d2e9',
  batchnorm: '#d9ead3',
  maxpool2d: '#fce5cd',
  avgpool2d: '#fce5cd',
  dropout: '#f4cccc',
  unary: '#fff2cc',
};

const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function label(n: Node, params: number): string {
  const shape = n.shape.join('×');
  const what = describeNode(n);
  const head = n.op === 'input' ? 'input' : n.module && !/^(unary|binary|reshape)$/.test(n.op) ? n.module : what;
  const lines = [`<b>${html(head)}</b>`];
  if (head !== what) lines.push(html(what));
  lines.push(`<font color="#555555">${shape}${params ? ` · ${params.toLocaleString('en-US')} params` : ''}</font>`);
  return `<${lines.join('<br/>')}>`;
}

function relative(n: Node, prefix: string): Node {
  return n.module.startsWith(`${prefix}.`) ? { ...n, module: n.module.slice(prefix.length + 1) } : n;
}

/** The graph in DOT; repeated blocks collapsed unless `expand`. */
export function graphDot(g: Graph, o: { expand?: boolean } = {}): string {
  const counts = paramCounts(g);
  const reps = o.expand ? [] : repeats(g);
  // nodes of the 2nd..last call of a repeat are left out; the last call's output stands for the first's
  const hidden = new Set<number>();
  const alias = new Map<number, number>();
  for (const r of reps) {
    const [a, ...rest] = r.calls;
    for (const c of rest) for (let v = c.first; v <= c.output; v++) hidden.add(v);
    alias.set(rest[rest.length - 1].output, a.output);
  }
  const id = (v: number) => alias.get(v) ?? v;
  const lines = [
    'digraph model {',
    '  rankdir=TB; nodesep=0.25; ranksep=0.3;',
    `  node [shape=box, style="rounded,filled", fontname="${FONT}", fontsize=10, margin="0.12,0.05", penwidth=0.8];`,
    `  edge [fontname="${FONT}", fontsize=9, arrowsize=0.6, color="#555555"];`,
  ];
  const node = (n: Node) =>
    n.op === 'binary' && n.attrs.fn === 'add'
      ? `  n${n.id} [label="+", shape=circle, width=0.3, fixedsize=true, fillcolor="#ffffff", fontsize=14];`
      : `  n${n.id} [label=${label(n, counts[n.id])}, fillcolor="${COLORS[n.op] ?? '#ffffff'}"];`;
  const inRepeat = (v: number) => reps.find((r) => v >= r.calls[0].first && v <= r.calls[0].output);
  for (const n of g.nodes) if (!hidden.has(n.id) && !inRepeat(n.id)) lines.push(node(n));
  reps.forEach((r, i) => {
    const [a] = r.calls;
    const last = r.calls[r.calls.length - 1];
    const params = counts.slice(a.first, a.output + 1).reduce((s, c) => s + c, 0);
    const title = `${a.type} ×${r.calls.length}: ${a.path} … ${last.path}`;
    const sub = `one instance, its ${params.toLocaleString('en-US')} parameters shared by every call`;
    lines.push(
      `  subgraph cluster_${i} {`,
      `    label=<<b>${html(title)}</b><br/><font point-size="9">${html(sub)}</font>>; labeljust=l; fontname="${FONT}"; fontsize=11;`,
      '    style="rounded,dashed"; color="#777777"; margin=14; labelloc=b;',
    );
    // inside, names relative to the block: 'conv' rather than 'resblocks.0.conv'
    for (let v = a.first; v <= a.output; v++) lines.push('  ' + node(relative(g.nodes[v], a.module)));
    lines.push('  }');
  });
  for (const n of g.nodes) {
    if (hidden.has(n.id) && !alias.has(n.id)) continue;
    const to = id(n.id);
    if (hidden.has(n.id)) continue;
    const skip = n.op === 'binary' && n.attrs.fn === 'add' ? Math.min(...n.inputs) : -1;
    for (const v of n.inputs) {
      if (hidden.has(v) && !alias.has(v)) continue;
      const style =
        v === skip && n.inputs.length === 2 && n.inputs[0] !== n.inputs[1]
          ? ' [style=dashed, color="#cc4125", label=" skip", fontcolor="#cc4125"]'
          : '';
      lines.push(`  n${id(v)} -> n${to}${style};`);
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** SVG of the diagram, laid out by Graphviz's dot. */
export async function graphSvg(g: Graph, o: { expand?: boolean } = {}): Promise<string> {
  const { Graphviz } = await import('@hpcc-js/wasm-graphviz');
  const gv = await Graphviz.load();
  return gv.dot(graphDot(g, o));
}
