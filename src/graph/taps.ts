// Naming a value of the graph to look at (activations, gen show, gen build --taps):
// a module path as it was called ('conv1', 'resblocks.3', 'resblocks.3.conv'), whose
// value is what that call returned, or a node id ('#12', or digits no module path takes).
import { formatShape, type Graph } from './ir.js';

export interface Tap {
  /** the name asked for */
  name: string;
  /** the node whose value it is (0: the model input) */
  node: number;
  /** per-sample shape */
  shape: number[];
}

/** Resolves names to nodes; an unknown or ambiguous name is an error listing what exists. */
export function resolveTaps(g: Graph, names: readonly (string | number)[]): Tap[] {
  if (!names.length) throw new Error(`${g.name}: name at least one module path or node id`);
  return names.map((name) => {
    const node = resolveOne(g, name);
    return { name: String(name), node, shape: [...g.nodes[node].shape] };
  });
}

function resolveOne(g: Graph, name: string | number): number {
  const calls = (g.calls ?? []).filter((c) => c.path === String(name));
  if (typeof name === 'string' && calls.length === 1) return calls[0].output;
  if (calls.length > 1)
    throw new Error(
      `${g.name}: '${name}' is called ${calls.length} times (nodes ${calls.map((c) => c.output).join(', ')}): name one by its node id, e.g. '#${calls[calls.length - 1].output}'`,
    );
  const id = typeof name === 'number' ? name : /^#?\d+$/.test(name) ? Number(name.replace('#', '')) : NaN;
  if (Number.isInteger(id) && id >= 0 && id < g.nodes.length) return id;
  throw new Error(`${g.name} has no module or node '${name}'; ${describeTaps(g)}`);
}

/** What can be named: the module paths with their output shapes, and the node id range. */
export function describeTaps(g: Graph): string {
  const paths = [...new Set((g.calls ?? []).map((c) => c.path))];
  const shown = paths.slice(0, 16).map((p) => {
    const c = g.calls!.find((k) => k.path === p)!;
    return `${p} ${formatShape(g.nodes[c.output].shape)}`;
  });
  const more = paths.length > shown.length ? `, … (${paths.length - shown.length} more)` : '';
  return `modules: ${shown.join(', ') || 'none'}${more}; nodes: #0 (the input) to #${g.nodes.length - 1} (gen inspect lists them)`;
}
