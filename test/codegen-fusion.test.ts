// Fusion must never change the math: a BatchNorm(+act) group may take a
// residual add only when the add's other summand is computed before it.
// Before the guard, bn(convA(x)) + convB(x) read convB's output early (off by
// 0.47 in eval) and a CIFAR ResNet with projection shortcuts trained at chance.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HostTensor } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { compiledBackend } from '../src/runtime/backend.js';
import { Rng } from '../src/util/rng.js';
import { BnAddEarlier, BnAddLater } from './fixtures/fusion-models.js';

const outRoot = path.join(os.tmpdir(), 'tk-test-fusion');

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < b.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('residual add fused after a BatchNorm', () => {
  it.each([
    ['BnAddLater', BnAddLater],
    ['BnAddEarlier', BnAddEarlier],
  ] as const)('%s: compiled CPU equals the interpreter in eval and over train steps', async (_, Model) => {
    const model = new Model();
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    const interp = new Interpreter(graph, state);
    const comp = await compiledBackend(graph, { outRoot, maxBatch: 8 });
    comp.loadState(state);
    const rng = new Rng(5);
    const B = 4;
    const x = Float32Array.from({ length: B * 3 * 36 }, () => rng.normal());
    const y = Int32Array.from({ length: B }, () => rng.int(3));
    expect(maxDiff(comp.forward(x, B, { train: false }), interp.forward(x, B, { train: false }))).toBeLessThan(1e-4);
    for (let s = 0; s < 3; s++) {
      const ri = interp.trainStep(x, y, B, { lr: 0.1 });
      const rc = comp.trainStep(x, y, B, { lr: 0.1 });
      expect(Math.abs(rc.loss - ri.loss)).toBeLessThan(1e-4);
    }
    expect(maxDiff(comp.forward(x, B, { train: false }), interp.forward(x, B, { train: false }))).toBeLessThan(1e-4);
  });
});
