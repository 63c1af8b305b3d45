// Shapes and ops the book's models do not reach, compiled and checked against
// the interpreter: odd widths (vector tails), a strided non-square conv (the
// general path), max pool on odd sizes (floor), average pool with padding,
// a plain add whose input feeds two consumers (gradient accumulation),
// standalone relu, BatchNorm without activation, elementwise dropout,
// flatten, a linear layer without bias.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { F, nn, torch, type Tensor } from '../src/graph/index.js';
import type { HostTensor } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { compiledBackend } from '../src/runtime/backend.js';
import { stepSeed } from '../src/train/rules.js';
import { Rng } from '../src/util/rng.js';

class Odd extends nn.Module {
  static inputShape = [3, 15, 13];
  c1 = new nn.Conv2d(3, 5, { kernelSize: 3, padding: 1 });
  c2 = new nn.Conv2d(5, 5, { kernelSize: 3, padding: 1 });
  c3 = new nn.Conv2d(5, 6, { kernelSize: [3, 2], stride: 2, padding: [1, 0] });
  bn = new nn.BatchNorm2d(6);
  drop = new nn.Dropout(0.3);
  fc = new nn.Linear(6 * 4 * 3, 3, { bias: false });

  forward(x: Tensor): Tensor {
    const a = F.maxPool2d(torch.relu(this.c1(x)), 2); // [5, 7, 6]
    const b = torch.tanh(this.c2(a));
    let o = torch.add(a, b);
    o = F.avgPool2d(o, 3, 1, 1); // [5, 7, 6]
    o = torch.relu(this.bn(this.c3(o))); // [6, 4, 3]
    o = this.drop(torch.flatten(o));
    return this.fc(o);
  }
}

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (m + 1e-12);
}

describe('compiled CPU == interpreter on unusual shapes', () => {
  it.each([1, 5, 16])('batch %i', async (batch) => {
    const model = new Odd();
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    const interp = new Interpreter(graph, state);
    const comp = await compiledBackend(graph, { outRoot: path.join(os.tmpdir(), 'tk-test-shapes'), maxBatch: 16 });
    comp.loadState(state);
    const rng = new Rng(batch);
    const x = Float32Array.from({ length: batch * 3 * 15 * 13 }, () => rng.normal());
    const y = Int32Array.from({ length: batch }, () => rng.int(3));
    expect(relErr(comp.forward(x, batch, { train: false }), interp.forward(x, batch, { train: false }))).toBeLessThan(1e-5);
    const opts = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, l1: 1e-4, l2: 1e-3 };
    for (let s = 0; s < 3; s++) {
      const ri = interp.trainStep(x, y, batch, opts, stepSeed(1, s));
      const rc = comp.trainStep(x, y, batch, opts, stepSeed(1, s));
      expect(Math.abs(rc.loss - ri.loss)).toBeLessThan(1e-5 + 1e-4 * Math.abs(ri.loss));
      for (const [k, g] of ri.grads) expect(relErr(rc.grads.get(k)!, g), `step ${s} grad ${k}`).toBeLessThan(2e-3);
    }
    for (const [k, t] of interp.stateDict())
      if (t.dtype === 'F32') expect(relErr(comp.stateDict().get(k)!.data as Float32Array, t.data as Float32Array), k).toBeLessThan(1e-4);
      else expect(comp.stateDict().get(k)!.data[0]).toBe(t.data[0]);
  });
});
