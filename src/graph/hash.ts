// A stable fingerprint of a graph's computation (not of where it was written),
// used to match checkpoints to models.
import { createHash } from 'node:crypto';
import type { Graph } from './ir.js';

export function graphHash(g: Graph): string {
  const nodes = g.nodes.map(({ source: _source, ...n }) => n);
  const body = JSON.stringify({ input: g.inputShape, nodes, output: g.output, state: g.state });
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}
