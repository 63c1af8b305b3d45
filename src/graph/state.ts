// Checks a state_dict against a graph before any backend loads it, so every
// backend reports the same, complete list of problems and changes nothing on error.
import type { Graph, HostTensor } from './ir.js';

/** Returns the tensors by canonical name, or throws listing every missing/unexpected key and mismatch. */
export function canonicalState(g: Graph, given: Map<string, HostTensor>, source = 'state_dict'): Map<string, HostTensor> {
  const info = new Map(g.state.map((s) => [s.name, s]));
  const problems: string[] = [];
  for (const [key, canon] of Object.entries(g.keys)) {
    const t = given.get(key);
    const s = info.get(canon)!;
    if (!t) problems.push(`missing key '${key}'`);
    else if (t.shape.join() !== s.shape.join()) problems.push(`'${key}': shape [${t.shape}] in ${source}, [${s.shape}] in ${g.name}`);
    else if (t.dtype !== s.dtype) problems.push(`'${key}': dtype ${t.dtype} in ${source}, ${s.dtype} in ${g.name}`);
  }
  for (const k of given.keys()) if (!Object.hasOwn(g.keys, k)) problems.push(`unexpected key '${k}'`); // not `in`: 'constructor' is no key
  if (problems.length) throw new Error(`cannot load ${source} into ${g.name}: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  return new Map(g.state.map((s) => [s.name, given.get(s.name)!]));
}

/** Expands canonical tensors to every state_dict key (shared modules repeat), in PyTorch's order. */
export function expandState(g: Graph, canonical: Map<string, HostTensor>): Map<string, HostTensor> {
  return new Map(Object.entries(g.keys).map(([key, canon]) => [key, canonical.get(canon)!]));
}
