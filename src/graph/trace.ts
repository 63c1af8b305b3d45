// Tracing: run a model's forward on a symbolic input and keep the ops.
import type { Graph, StateInfo } from './ir.js';
import { Buffer, type Module } from './module.js';
import { Tensor } from './tensor.js';
import { Tracer, withTracer } from './tracer.js';

export const DEFAULT_INPUT = [3, 32, 32];

/** The input shape a model declares (`static inputShape`), else CIFAR's [3, 32, 32]. */
export function declaredInput(model: Module): number[] {
  const s = (model.constructor as { inputShape?: number[] }).inputShape;
  return s ? [...s] : [...DEFAULT_INPUT];
}

export function trace(model: Module, inputShape: number[] = declaredInput(model)): Graph {
  if (inputShape.length !== 3 || inputShape.some((d) => !Number.isInteger(d) || d < 1))
    throw new Error(`input shape must be three positive integers C,H,W; got [${inputShape.join(', ')}]`);
  const names = new Map<object, string>(model.namedModules().map(([n, m]) => [m, n]));
  const tracer = new Tracer(names);
  const out = withTracer(tracer, () => {
    tracer.record({ op: 'input', inputs: [], shape: [...inputShape], params: [] });
    tracer.nodes[0].source = 'input';
    return model(new Tensor(0, inputShape));
  });
  if (!(out instanceof Tensor)) throw new Error(`${model.constructor.name}.forward must return a tensor`);
  if (out.sampleShape.length !== 1)
    throw new Error(`${model.constructor.name}.forward returns ${out.toString()}: expected logits [B, classes]`);
  // Lazy layers materialise during the trace, so state is read after it.
  const keys = model.stateKeys();
  const canonical = new Map<object, string>();
  const state: StateInfo[] = [];
  const keyMap: Record<string, string> = {};
  for (const [k, e] of keys) {
    if (!canonical.has(e)) {
      canonical.set(e, k);
      state.push({
        name: k,
        shape: [...e.shape],
        dtype: e instanceof Buffer ? e.dtype : 'F32',
        kind: e instanceof Buffer ? 'buffer' : 'param',
      });
    }
    keyMap[k] = canonical.get(e)!;
  }
  const known = new Set(state.map((s) => s.name));
  for (const n of tracer.nodes)
    for (const p of n.params) if (!known.has(p)) throw new Error(`internal: node ${n.id} (${n.op}) reads unknown state '${p}'`);
  const g: Graph = { name: model.constructor.name, inputShape: [...inputShape], nodes: tracer.nodes, output: out.id, state, keys: keyMap };
  return tracer.calls.length ? { ...g, calls: tracer.calls } : g;
}
