// Shapes and ops the book's models do not reach, compiled and checked against
// the interpreter: odd widths (vector tails), a strided non-square conv (the
// general path), max pool on odd sizes (floor), average pool with padding,
// a plain add whose input feeds two consumers (gradient accumulation),
// standalone relu, BatchNorm without activation, elementwise dropout,
// flatten, a linear layer without bias; BatchNorm fused with a max pool (relu,
// no activation, a vector tail, an input gradient that accumulates) and not
// fused (odd height).
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { F, nn, torch, type Tensor } from '../src/graph/index.js';
import type { HostTensor } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { plan } from '../src/codegen/cpu/plan.js';
import { BnFirst } from './fixtures/bn-first.js';
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

class BnPool extends nn.Module {
  static inputShape = [3, 12, 36];
  c1 = new nn.Conv2d(3, 4, { kernelSize: 3, padding: 1 });
  bn1 = new nn.BatchNorm2d(4);
  c2 = new nn.Conv2d(4, 4, { kernelSize: 3, padding: 1 });
  bn2 = new nn.BatchNorm2d(4);
  c3 = new nn.Conv2d(4, 4, { kernelSize: 3, padding: 1 });
  bn3 = new nn.BatchNorm2d(4);
  fc = new nn.Linear(16, 3);

  forward(x: Tensor): Tensor {
    const a = F.maxPool2d(torch.relu(this.bn1(this.c1(x))), 2); // [4, 6, 18]
    const z = this.c2(a);
    const b = torch.add(F.maxPool2d(this.bn2(z), 2), F.avgPool2d(z, 2)); // [4, 3, 9]
    const c = F.maxPool2d(torch.tanh(this.bn3(this.c3(b))), 2); // [4, 1, 4]
    return this.fc(torch.flatten(c));
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
  it('BatchNorm + max pool is fused where the pool is 2x2/2 over even sizes', () => {
    expect(plan(trace(new BnPool())).groups.map((g) => g.split(' [')[0])).toEqual([
      'conv2d',
      'batchnorm+relu+maxpool2d',
      'conv2d',
      'batchnorm+maxpool2d',
      'avgpool2d',
      'add',
      'conv2d',
      'batchnorm+tanh',
      'maxpool2d',
      'reshape',
      'linear',
    ]);
  });

  it.each([
    ['Odd', 1],
    ['Odd', 5],
    ['Odd', 16],
    ['BnPool', 1],
    ['BnPool', 6],
    ['BnFirst', 4],
  ] as const)('%s, batch %i', async (name, batch) => {
    const model = name === 'Odd' ? new Odd() : name === 'BnPool' ? new BnPool() : new BnFirst();
    const [C, H, W] = (model.constructor as unknown as { inputShape: number[] }).inputShape;
    const graph = trace(model);
    const state = model.stateDict() as Map<string, HostTensor>;
    const interp = new Interpreter(graph, state);
    const comp = await compiledBackend(graph, { outRoot: path.join(os.tmpdir(), 'tk-test-shapes'), maxBatch: 16 });
    comp.loadState(state);
    const rng = new Rng(batch);
    const x = Float32Array.from({ length: batch * C * H * W }, () => rng.normal());
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
