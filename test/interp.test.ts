// The reference interpreter on small examples worked out by hand, and its API
// (state, training step, dropout masks, errors).
import { describe, expect, it } from 'vitest';
import { F, manualSeed, nn, torch, type Tensor } from 'tensorkiln';
import { Net, NetResDeep } from '../models/book.js';
import { Interpreter } from '../src/interp/index.js';
import type { Node } from '../src/graph/ir.js';
import { opOf } from '../src/ops/index.js';
import { crossEntropy } from '../src/ops/loss.js';
import { hashUniform, Rng } from '../src/util/rng.js';

const f64 = (a: number[]) => Float64Array.from(a);
const expectClose = (got: ArrayLike<number>, want: ArrayLike<number>, digits = 12) => {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(got[i], `element ${i}`).toBeCloseTo(want[i], digits);
};

function fnModel(f: (x: Tensor) => Tensor): nn.Module {
  return new (class extends nn.Module {
    forward(x: Tensor): Tensor {
      return f(x).flatten();
    }
  })();
}

/** Runs one node through its registry entry: forward, then (given dout) backward into fresh gradients. */
function run(node: Node, x: Float64Array[], xShape: number[][], params: Float64Array[] = [], dout?: Float64Array) {
  const B = 1;
  const out = new Float64Array(B * node.shape.reduce((a, b) => a * b, 1));
  const op = opOf(node);
  const param = (i: number) => params[i];
  const saved = op.forward(node, { B, train: true, seed: 0, x, xShape, out, param, bump: () => {}, mask: () => undefined });
  const dx = x.map((a) => new Float64Array(a.length));
  const grads = params.map((p) => new Float64Array(p.length));
  if (dout) op.backward(node, { B, train: true, x, xShape, out, dout, saved, param, dx: (i) => dx[i], grad: (i) => grads[i] });
  return { out, dx, grads };
}

const node = (n: object): Node => ({ id: 1, module: '', source: 'test', ...n }) as Node;

describe('ops by hand', () => {
  // inp[r][c] = 4r + c + 1, one sample, one channel; 3x3 kernel, stride 2, padding 1 → 2x2 output
  const inp = f64(Array.from({ length: 16 }, (_, i) => i + 1));
  const attrs = { inC: 1, outC: 1, kh: 3, kw: 3, sh: 2, sw: 2, ph: 1, pw: 1, ph2: 1, pw2: 1, dh: 1, dw: 1, groups: 1, bias: false };
  const conv = node({ op: 'conv2d', inputs: [0], shape: [1, 2, 2], params: ['w'], attrs });
  const convB = node({ op: 'conv2d', inputs: [0], shape: [1, 2, 2], params: ['w', 'b'], attrs: { ...attrs, bias: true } });

  it('conv2d forward with padding and stride on a 4x4 input', () => {
    const centre = f64([0, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect([...run(conv, [inp], [[1, 4, 4]], [centre]).out]).toEqual([1, 3, 9, 11]); // inputs at (0,0), (0,2), (2,0), (2,2)
    // window sums: rows 0-1 × cols 0-1, rows 0-1 × cols 1-3, rows 1-3 × cols 0-1, rows 1-3 × cols 1-3
    expect([...run(convB, [inp], [[1, 4, 4]], [new Float64Array(9).fill(1), f64([0.5])]).out]).toEqual([14.5, 30.5, 57.5, 99.5]);
  });

  it('conv2d backward with padding and stride on a 4x4 input', () => {
    const r = run(convB, [inp], [[1, 4, 4]], [new Float64Array(9).fill(1), f64([0])], f64([1, 1, 1, 1]));
    // each input pixel is read by (windows over its row)·(windows over its column): rows/cols 0..3 → 1, 2, 1, 1
    expect([...r.dx[0]]).toEqual([1, 2, 1, 1, 2, 4, 2, 2, 1, 2, 1, 1, 1, 2, 1, 1]);
    // dW[ky][kx] = Σ of the inputs that tap reads: ky=0 reads row 1, ky=1 rows 0,2, ky=2 rows 1,3 (same for columns)
    expect([...r.grads[0]]).toEqual([6, 12, 14, 12, 24, 28, 20, 40, 44]);
    expect([...r.grads[1]]).toEqual([4]);
  });

  it('a dilated, grouped conv: each output channel reads its own input channel with taps two apart', () => {
    // two channels 3x3 (values 1..9 and 10..18), depthwise 2x2 kernels of ones, dilation 2 → one output per channel
    const x = f64(Array.from({ length: 18 }, (_, i) => i + 1));
    const dw = node({
      op: 'conv2d',
      inputs: [0],
      shape: [2, 1, 1],
      params: ['w'],
      attrs: { ...attrs, inC: 2, outC: 2, kh: 2, kw: 2, sh: 1, sw: 1, ph: 0, pw: 0, ph2: 0, pw2: 0, dh: 2, dw: 2, groups: 2 },
    });
    const r = run(dw, [x], [[2, 3, 3]], [new Float64Array(8).fill(1)], f64([1, 10]));
    expect([...r.out]).toEqual([1 + 3 + 7 + 9, 10 + 12 + 16 + 18]); // the corners
    expect([...r.dx[0]]).toEqual([1, 0, 1, 0, 0, 0, 1, 0, 1, 10, 0, 10, 0, 0, 0, 10, 0, 10]);
  });

  const pool = (op: 'maxpool2d' | 'avgpool2d', shape: number[], a: object) =>
    node({ op, inputs: [0], shape, params: [], attrs: { kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0, countIncludePad: true, ...a } });

  it('maxpool2d sends the gradient to the first maximum in row-major window order', () => {
    // one channel 2x4: window 1 [[1,3],[3,2]] (tie between (0,1) and (1,0)), window 2 all zeros (ReLU zeros)
    const x = f64([1, 3, 0, 0, 3, 2, 0, 0]);
    const r = run(pool('maxpool2d', [1, 1, 2], {}), [x], [[1, 2, 4]], [], f64([5, 7]));
    expect([...r.out]).toEqual([3, 0]);
    expect([...r.dx[0]]).toEqual([0, 5, 7, 0, 0, 0, 0, 0]);
  });

  it('maxpool2d padding is −∞, avgpool2d padding counts as zeros in the mean (or not, with countIncludePad false)', () => {
    const x = f64([-5, -3, -4, -6]);
    expect([...run(pool('maxpool2d', [1, 2, 2], { ph: 1, pw: 1 }), [x], [[1, 2, 2]]).out]).toEqual([-5, -3, -4, -6]);
    const avg = run(pool('avgpool2d', [1, 2, 2], { ph: 1, pw: 1 }), [x], [[1, 2, 2]], [], f64([1, 2, 3, 4]));
    expect([...avg.out]).toEqual([-5 / 4, -3 / 4, -4 / 4, -6 / 4]);
    expect([...avg.dx[0]]).toEqual([0.25, 0.5, 0.75, 1]);
    const exclude = run(pool('avgpool2d', [1, 2, 2], { ph: 1, pw: 1, countIncludePad: false }), [x], [[1, 2, 2]], [], f64([1, 2, 3, 4]));
    expect([...exclude.out]).toEqual([-5, -3, -4, -6]); // each window holds one real value
    expect([...exclude.dx[0]]).toEqual([1, 2, 3, 4]);
  });

  const unary = (fn: string, p: object = {}) => node({ op: 'unary', inputs: [0], shape: [4], params: [], attrs: { fn, p } } as never);

  it('relu has gradient 0 at 0; tanh uses 1 − y²', () => {
    const x = f64([0, 1, -1, 2]);
    const ones = f64([1, 1, 1, 1]);
    const relu = run(unary('relu'), [x], [[4]], [], ones);
    expect([...relu.out]).toEqual([0, 1, 0, 2]);
    expect([...relu.dx[0]]).toEqual([0, 1, 0, 1]);
    expectClose(
      run(unary('tanh'), [x], [[4]], [], ones).dx[0],
      [...x].map((v) => 1 / Math.cosh(v) ** 2),
    );
  });

  it('broadcast multiply: a [C, 1, 1] gate scales whole channels and sums its gradient over them', () => {
    const a = f64([1, 2, 3, 4, 5, 6, 7, 8]); // [2, 2, 2]
    const gate = f64([10, -1]); // [2, 1, 1]
    const mul = node({ op: 'binary', inputs: [0, 2], shape: [2, 2, 2], params: [], attrs: { fn: 'mul' } });
    const r = run(
      mul,
      [a, gate],
      [
        [2, 2, 2],
        [2, 1, 1],
      ],
      [],
      new Float64Array(8).fill(1),
    );
    expect([...r.out]).toEqual([10, 20, 30, 40, -5, -6, -7, -8]);
    expect([...r.dx[0]]).toEqual([10, 10, 10, 10, -1, -1, -1, -1]);
    expect([...r.dx[1]]).toEqual([1 + 2 + 3 + 4, 5 + 6 + 7 + 8]);
  });

  it('concat stacks channel blocks; its gradient splits them back', () => {
    const cat = node({ op: 'concat', inputs: [0, 2], shape: [3, 1, 1], params: [] });
    const r = run(
      cat,
      [f64([1, 2]), f64([3])],
      [
        [2, 1, 1],
        [1, 1, 1],
      ],
      [],
      f64([4, 5, 6]),
    );
    expect([...r.out]).toEqual([1, 2, 3]);
    expect([...r.dx[0]]).toEqual([4, 5]);
    expect([...r.dx[1]]).toEqual([6]);
  });

  it('softmax and log-softmax: rows of probabilities; gradients y·(g − Σ g·y) and g − p·Σ g', () => {
    const x = f64([0, Math.log(3)]);
    const sm = run(node({ op: 'softmax', inputs: [0], shape: [2], params: [], attrs: { log: false } }), [x], [[2]], [], f64([1, 0]));
    expectClose(sm.out, [0.25, 0.75], 14);
    expectClose(sm.dx[0], [0.25 * (1 - 0.25), 0.75 * (0 - 0.25)], 14);
    const ls = run(node({ op: 'softmax', inputs: [0], shape: [2], params: [], attrs: { log: true } }), [x], [[2]], [], f64([1, 0]));
    expectClose(ls.out, [Math.log(0.25), Math.log(0.75)], 14);
    expectClose(ls.dx[0], [1 - 0.25, -0.75], 14);
  });

  it('cross-entropy: mean of logsumexp − z[label], gradient (softmax − onehot)/B; label smoothing and NLL', () => {
    const { loss, dlogits } = crossEntropy([0, 0, 1, 0], [0, 1], 2, 2);
    const e = Math.E;
    expect(loss).toBeCloseTo((Math.log(2) + Math.log(1 + e)) / 2, 14);
    expectClose(dlogits, [-0.25, 0.25, e / (1 + e) / 2, (1 / (1 + e) - 1) / 2], 14);
    expect(() => crossEntropy([0, 0], [2], 1, 2)).toThrow(/label 0 is 2/);
    // smoothing 0.2 over 2 classes: target (0.9, 0.1) for label 0; equal logits give loss log 2 and gradient p − q
    const s = crossEntropy([0, 0], [0], 1, 2, { kind: 'cross_entropy', labelSmoothing: 0.2 });
    expect(s.loss).toBeCloseTo(Math.log(2), 14);
    expectClose(s.dlogits, [0.5 - 0.9, 0.5 - 0.1], 14);
    const nll = crossEntropy([-1, -2, -3, -4], [1, 0], 2, 2, { kind: 'nll' });
    expect(nll.loss).toBeCloseTo((2 + 3) / 2, 14);
    expectClose(nll.dlogits, [0, -0.5, -0.5, 0], 14);
  });
});

describe('BatchNorm running statistics by hand', () => {
  class OneBn extends nn.Module {
    bn = new nn.BatchNorm2d(2);
    forward(x: Tensor): Tensor {
      return this.bn(x).flatten();
    }
  }

  it('train: batch mean and biased variance normalise; running stats take the unbiased variance', () => {
    // B=2, C=2, H=1, W=2; channel 0 holds 1, 2 | 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1 holds 0, 0 | 0, 4
    const it = Interpreter.fromModel(new OneBn(), [2, 1, 2]);
    const x = f64([1, 2, 0, 0, 3, 6, 0, 4]);
    const y = it.forward(x, 2, { train: true });
    const s0 = 1 / Math.sqrt(3.5 + 1e-5);
    const s1 = 1 / Math.sqrt(3 + 1e-5); // channel 1: mean 1, biased var (1+1+1+9)/4 = 3
    expectClose(y, [-2 * s0, -1 * s0, -1 * s1, -1 * s1, 0, 3 * s0, -1 * s1, 3 * s1]);
    expectClose(it.values.get('bn.running_mean')!, [0.3, 0.1]);
    expectClose(it.values.get('bn.running_var')!, [0.9 + 0.1 * (14 / 3), 0.9 + 0.1 * 4]);
    expect(it.counters.get('bn.num_batches_tracked')).toBe(1n);
    // eval uses the running statistics and changes nothing
    const e = it.forward(x, 2, { train: false });
    expect(e[0]).toBeCloseTo((1 - 0.3) / Math.sqrt(0.9 + 0.1 * (14 / 3) + 1e-5), 12);
    expect(it.counters.get('bn.num_batches_tracked')).toBe(1n);
  });

  it('a BatchNorm called twice in one forward updates its buffers twice, in order', () => {
    class Twice extends nn.Module {
      bn = new nn.BatchNorm2d(1);
      forward(x: Tensor): Tensor {
        return this.bn(this.bn(x)).flatten();
      }
    }
    const it = Interpreter.fromModel(new Twice(), [1, 1, 1]);
    it.forward(f64([1, 3]), 2, { train: true });
    // 1st call: mean 2, unbiased var 2 → rm 0.2, rv 0.9·1 + 0.1·2 = 1.1; output ±1/√(1 + eps)
    // 2nd call: mean 0, unbiased var 2/(1 + eps) → rm 0.18, rv 0.9·1.1 + 0.1·2/(1 + eps)
    expectClose(it.values.get('bn.running_mean')!, [0.18]);
    expectClose(it.values.get('bn.running_var')!, [0.99 + 0.2 / (1 + 1e-5)]);
    expect(it.counters.get('bn.num_batches_tracked')).toBe(2n);
  });

  it('refuses to train on one value per channel, as PyTorch', () => {
    const it = Interpreter.fromModel(new OneBn(), [2, 1, 1]);
    expect(() => it.forward(f64([1, 2]), 1, { train: true })).toThrow(
      /bn: expected more than 1 value per channel when training, got input \[1, 2, 1, 1\]/,
    );
    expect(it.forward(f64([1, 2]), 1, { train: false })).toHaveLength(2);
  });
});

describe('dropout masks', () => {
  it('follow hashUniform(seed, stream, index) ≥ p with the indices of ir.ts, scaled by 1/(1 − p)', () => {
    const model = fnModel((x) => F.dropout2d(F.dropout(x, 0.25), 0.5));
    const it = Interpreter.fromModel(model, [3, 2, 2]);
    const [d1, d2] = it.graph.nodes.filter((n) => n.op === 'dropout');
    expect(d1.op === 'dropout' && d2.op === 'dropout' && d1.attrs.stream !== d2.attrs.stream).toBe(true);
    const B = 2;
    const x = new Float64Array(B * 12).fill(1);
    const seed = 1234;
    const y = it.forward(x, B, { train: true, seed });
    const s1 = d1.op === 'dropout' ? d1.attrs.stream : -1;
    const s2 = d2.op === 'dropout' ? d2.attrs.stream : -1;
    for (let b = 0; b < B; b++)
      for (let i = 0; i < 12; i++) {
        const elem = hashUniform(seed, s1, b * 12 + i) >= 0.25 ? 1 / 0.75 : 0;
        const chan = hashUniform(seed, s2, b * 3 + Math.floor(i / 4)) >= 0.5 ? 2 : 0;
        expect(y[b * 12 + i]).toBeCloseTo(elem * chan, 14);
      }
    expect(it.forward(x, B, { train: true, seed: seed + 1 })).not.toEqual(y);
    expect([...it.forward(x, B, { train: false })]).toEqual([...x]);
  });
});

describe('training step', () => {
  class Tiny extends nn.Module {
    fc1 = new nn.Linear(6, 4);
    fc2 = new nn.Linear(4, 3);
    forward(x: Tensor): Tensor {
      return this.fc2(torch.tanh(this.fc1(x.view(-1, 6))));
    }
  }
  const rng = new Rng(4);
  const x = new Float64Array(5 * 6).map(() => rng.normal());
  const labels = [0, 2, 1, 1, 0];

  it('penalties: loss − lossCE = l1·Σ|p| + l2·Σp², and their gradients are in grads', () => {
    manualSeed(1);
    const model = new Tiny();
    const a = Interpreter.fromModel(model, [1, 2, 3]);
    const b = Interpreter.fromModel(model, [1, 2, 3]);
    const pen = { l1: 1e-3, l2: 1e-2 };
    let l1 = 0;
    let l2 = 0;
    for (const n of a.paramNames)
      for (const p of a.values.get(n)!) {
        l1 += Math.abs(p);
        l2 += p * p;
      }
    const before = new Map([...a.values].map(([k, v]) => [k, v.slice()]));
    const withPen = a.trainStep(x, labels, 5, { lr: 0, ...pen });
    const plain = b.trainStep(x, labels, 5, { lr: 0 });
    expect(withPen.lossCE).toBeCloseTo(plain.loss, 14);
    expect(withPen.loss - withPen.lossCE).toBeCloseTo(1e-3 * l1 + 1e-2 * l2, 14);
    for (const n of a.paramNames) {
      const p = before.get(n)!;
      const want = plain.grads.get(n)!.map((g, i) => g + 1e-3 * Math.sign(p[i]) + 2 * 1e-2 * p[i]);
      expectClose(withPen.grads.get(n)!, want, 14);
    }
  });

  it('SGD with momentum and weight decay: the buffer starts as the first step’s gradient', () => {
    manualSeed(2);
    const it = Interpreter.fromModel(new Tiny(), [1, 2, 3]);
    const opts = { lr: 0.1, momentum: 0.9, weightDecay: 0.01, l1: 1e-3, l2: 1e-3 };
    const p0 = new Map([...it.values].map(([k, v]) => [k, v.slice()]));
    const r0 = it.trainStep(x, labels, 5, opts);
    const p1 = new Map([...it.values].map(([k, v]) => [k, v.slice()]));
    const r1 = it.trainStep(x, labels, 5, opts);
    for (const n of it.paramNames) {
      const b0 = r0.grads.get(n)!.map((g, i) => g + 0.01 * p0.get(n)![i]);
      expectClose(
        p1.get(n)!,
        p0.get(n)!.map((p, i) => p - 0.1 * b0[i]),
        14,
      );
      const b1 = r1.grads.get(n)!.map((g, i) => 0.9 * b0[i] + g + 0.01 * p1.get(n)![i]);
      expectClose(
        it.values.get(n)!,
        p1.get(n)!.map((p, i) => p - 0.1 * b1[i]),
        14,
      );
      expectClose(it.momentumBuffers.get(n)!, b1, 14);
    }
    expect(r1.loss).toBeLessThan(r0.loss);
  });

  it('keeps no momentum buffers when momentum is 0', () => {
    const it = Interpreter.fromModel(new Tiny(), [1, 2, 3]);
    it.trainStep(x, labels, 5, { lr: 0.1 });
    expect(it.momentumBuffers.size).toBe(0);
  });

  it('Net at batch 8 trains a step', () => {
    const it = Interpreter.fromModel(new Net());
    const xs = new Float32Array(8 * 3 * 32 * 32).map(() => rng.normal());
    const r = it.trainStep(xs, [0, 1, 0, 1, 1, 0, 0, 1], 8, { lr: 0.01 });
    expect(Number.isFinite(r.loss)).toBe(true);
  });

  it('NetResDeep (32 channels, 10 shared blocks) trains a step at batch 64', () => {
    manualSeed(0);
    const it = Interpreter.fromModel(new NetResDeep());
    const B = 64;
    const xs = new Float32Array(B * 3 * 32 * 32).map(() => rng.normal());
    const r = it.trainStep(
      xs,
      Array.from({ length: B }, (_, i) => i % 2),
      B,
      { lr: 0.01, momentum: 0.9 },
    );
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(it.counters.get('resblocks.0.batch_norm.num_batches_tracked')).toBe(10n);
  });
});

describe('state', () => {
  it('stateDict has canonical names; fullStateDict every key; shared BatchNorm counts every call', () => {
    manualSeed(0);
    const it = Interpreter.fromModel(new NetResDeep({ nBlocks: 3, nChans1: 4 }));
    const sd = it.stateDict();
    expect([...sd.keys()]).toEqual(it.graph.state.map((s) => s.name));
    expect(sd.get('resblocks.0.batch_norm.num_batches_tracked')).toEqual({ dtype: 'I64', shape: [], data: BigInt64Array.of(0n) });
    const full = it.fullStateDict();
    expect([...full.keys()]).toEqual(Object.keys(it.graph.keys));
    expect(full.has('resblocks.2.conv.weight')).toBe(true);
    it.forward(new Float32Array(2 * 3 * 32 * 32).fill(0.1), 2, { train: true });
    expect(it.stateDict().get('resblocks.0.batch_norm.num_batches_tracked')!.data[0]).toBe(3n);
  });

  it('loadState takes state_dict keys or canonical names, is strict, and changes nothing on error', () => {
    manualSeed(0);
    const a = Interpreter.fromModel(new NetResDeep({ nBlocks: 2, nChans1: 4 }));
    manualSeed(1);
    const b = Interpreter.fromModel(new NetResDeep({ nBlocks: 2, nChans1: 4 }));
    const before = b.stateDict();
    const broken = new Map(a.fullStateDict());
    broken.delete('fc1.bias');
    broken.set('fc9.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    expect(() => b.loadState(broken)).toThrow(/missing key 'fc1.bias'[\s\S]*unexpected key 'fc9.weight'/);
    expect(b.stateDict()).toEqual(before);
    b.loadState(a.fullStateDict());
    expect(b.stateDict()).toEqual(a.stateDict());
    b.loadState(before);
    expect(b.stateDict()).toEqual(before);
  });

  it('reports misuse', () => {
    const it = Interpreter.fromModel(new Net());
    expect(() => it.backward([0, 0])).toThrow(/forward first/);
    expect(() => it.forward(new Float32Array(10), 1, { train: false })).toThrow(/needs batch·3·32·32 = 3072/);
    it.forward(new Float32Array(3072), 1, { train: false });
    expect(() => it.backward([0, 0, 0])).toThrow(/dlogits has 3 values/);
  });
});
