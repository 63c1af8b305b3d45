// The CPU memory plan is free of races between threads. Each thread owns a
// slice of the batch, and sample b of an arena buffer lives at
// offset·maxBatch + b·stride. Between two barriers threads run unsynchronised,
// so two buffers touched there must never put different threads on the same
// bytes. This checks that by replaying the plan's calls with the runtime's
// batch slicing, independent of how the planner decides where barriers go.
import { describe, expect, it } from 'vitest';
import { plan, type Buffer, type Call, type Plan } from '../src/codegen/cpu/plan.js';
import { nn, torch, type Tensor } from '../src/graph/index.js';
import { trace } from '../src/graph/trace.js';
import { bookModels } from '../models/book.js';
import { zooModels } from '../models/zoo.js';

/** tk_runtime.h's tk::slice: thread t of nt owns samples [lo, hi). */
function slice(n: number, t: number, nt: number): [number, number] {
  return [Math.floor((n * t) / nt), Math.floor((n * (t + 1)) / nt)];
}

/** Groups of buffer names touched between barriers, in program order, for a train step or an eval forward. */
function segments(p: Plan, train: boolean): Set<string>[] {
  const skip = train ? '!c.train' : 'c.train';
  const lossCall = { args: [{ buf: p.loss.logits }, { buf: p.loss.dlogits }], barrier: p.loss.barrier } as unknown as Call;
  const calls = train ? [...p.forward, lossCall, ...p.backward] : p.forward;
  const out: Set<string>[] = [new Set()];
  for (const c of calls) {
    if (c.when === skip) continue;
    if (c.barrier) out.push(new Set());
    for (const a of c.args) if ('buf' in a) out[out.length - 1].add(a.buf);
  }
  return out;
}

/** The first pair of threads whose slices of x and y share a byte, or null. */
function clash(x: Buffer, y: Buffer, B: number, maxBatch: number, nt: number): string | null {
  for (let t = 0; t < nt; t++)
    for (let u = 0; u < nt; u++) {
      if (t === u) continue;
      const [a0, a1] = slice(B, t, nt);
      const [b0, b1] = slice(B, u, nt);
      if (a0 === a1 || b0 === b1) continue;
      const xs = x.offset * maxBatch + a0 * x.stride;
      const xe = x.offset * maxBatch + a1 * x.stride;
      const ys = y.offset * maxBatch + b0 * y.stride;
      const ye = y.offset * maxBatch + b1 * y.stride;
      if (xs < ye && ys < xe) return `thread ${t}'s ${x.name} and thread ${u}'s ${y.name} (B ${B}, ${nt} threads)`;
    }
  return null;
}

function races(p: Plan, maxBatch: number): string[] {
  const byName = new Map(p.buffers.map((b) => [b.name, b]));
  const found: string[] = [];
  for (const train of [true, false])
    for (const seg of segments(p, train)) {
      const bufs = [...seg].map((n) => byName.get(n)!);
      for (const x of bufs)
        for (const y of bufs) {
          if (x === y || (x.offset === y.offset && x.stride === y.stride)) continue;
          for (const nt of [2, 3, 4])
            for (const B of [2, 3, 5, 17, maxBatch]) {
              const r = clash(x, y, B, maxBatch, nt);
              if (r) found.push(`${train ? 'train' : 'eval'}: ${r}`);
            }
        }
    }
  return [...new Set(found)];
}

/** Buffers of different sizes that round to one 64-byte size reuse one offset (the race fixed here). */
class SmallTail extends nn.Module {
  static inputShape = [3, 8, 8];
  stem = new nn.Conv2d(3, 4, { kernelSize: 3, padding: 1 });
  down = new nn.Conv2d(4, 4, { kernelSize: 1, stride: 2, bias: false });
  c5 = new nn.Conv2d(4, 4, { kernelSize: 5, stride: 2, padding: 2 });
  pw2 = new nn.Conv2d(4, 5, { kernelSize: 1 });
  fc = new nn.Linear(5 * 2 * 2, 3);

  forward(x: Tensor): Tensor {
    let a = torch.relu(this.stem(x)); // [4, 8, 8]
    a = torch.relu(this.down(a)); // [4, 4, 4]
    a = this.c5(a); // [4, 2, 2]
    return this.fc(torch.flatten(torch.relu(this.pw2(a)))); // [3]
  }
}

const models: Record<string, new () => nn.Module> = { ...bookModels, ...zooModels, SmallTail };

describe('CPU memory plan: no two threads touch the same bytes between barriers', () => {
  it.each(Object.keys(models))('%s', (name) => {
    const graph = trace(new models[name]());
    expect(races(plan(graph), 64)).toEqual([]);
    expect(races(plan(graph, { inputGrad: true }), 64)).toEqual([]);
  });

  it('finds the race when a barrier is taken away', () => {
    const p = plan(trace(new SmallTail()));
    const stripped = { ...p, backward: p.backward.map((c) => ({ ...c, barrier: false })), loss: { ...p.loss, barrier: false } };
    expect(races(stripped, 64).length).toBeGreaterThan(0);
  });
});
