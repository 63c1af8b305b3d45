// Every op of the small-CNN set through the compiled CPU backend and the CUDA
// kernels (on the CPU emulator), against the float64 interpreter: eval
// logits, three train steps (loss, logits, gradients) and the state after.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../src/check/backend.js';
import type { Graph, HostTensor } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { compiledBackend, cudaBackend } from '../src/runtime/backend.js';
import { Rng } from '../src/util/rng.js';
import { opSetModels } from './fixtures/op-set-models.js';

const outRoot = path.join(os.tmpdir(), 'tk-test-ops');
const opts = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3 };

/** max |a − b| / (atol + rtol·max|b|): ≤ 1 passes */
function ratio(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (atol + rtol * m);
}

const backends: [string, (g: Graph) => Promise<Backend>][] = [
  ['cpu', (g) => compiledBackend(g, { outRoot, maxBatch: 8 })],
  ['cuda-emu', (g) => cudaBackend(g, { outRoot, maxBatch: 8, emulator: true })],
];
const cases = Object.keys(opSetModels).flatMap((m) => backends.map(([b]) => [m, b] as const));

describe('the op set on the compiled backends equals the interpreter', () => {
  it.each(cases)('%s on %s', async (name, backend) => {
    const model = new opSetModels[name as keyof typeof opSetModels]();
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    const interp = new Interpreter(graph, state);
    const comp = await backends.find((b) => b[0] === backend)![1](graph);
    comp.loadState(state);
    const rng = new Rng(name.length * 7 + 1);
    const B = 5;
    const per = graph.inputShape.reduce((a, b) => a * b, 1);
    const classes = graph.nodes[graph.output].shape[0];
    const x = Float32Array.from({ length: B * per }, () => rng.normal());
    const y = Int32Array.from({ length: B }, () => rng.int(classes));
    const worst: Record<string, number> = {};
    const note = (k: string, r: number) => (worst[k] = Math.max(worst[k] ?? 0, r));
    note('logits_eval', ratio(comp.forward(x, B, { train: false }), interp.forward(x, B, { train: false }), 1e-5, 1e-4));
    for (let s = 0; s < 3; s++) {
      const ri = interp.trainStep(x, y, B, opts, 17 + s);
      const rc = comp.trainStep(x, y, B, opts, 17 + s);
      note('loss', Math.abs(rc.loss - ri.loss) / (1e-5 + 1e-4 * Math.abs(ri.loss)));
      note('logits_train', ratio(rc.logits, ri.logits, 1e-5, 1e-3));
      for (const [k, g] of ri.grads) note(`grad.${k}`, ratio(rc.grads.get(k)!, g, 1e-6, 1e-3));
    }
    for (const [k, t] of interp.stateDict()) {
      const c = comp.stateDict().get(k)!;
      if (t.dtype === 'I64') expect(c.data[0], k).toBe(t.data[0]);
      else note(`after.${k}`, ratio(c.data as Float32Array, t.data as Float32Array, 1e-6, 1e-3));
    }
    const bad = Object.entries(worst).filter(([, r]) => !(r <= 1));
    if (bad.length) console.log(name, backend, bad);
    expect(bad).toEqual([]);
  });
});
