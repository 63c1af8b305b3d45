// The reference interpreter on small examples worked out by hand, and its API
// (state, training step, dropout masks, errors).
import { describe, expect, it } from 'vitest';
import { F, manualSeed, nn, torch, type Tensor } from 'tensorkiln';
import { Net, NetResDeep } from '../models/book.js';
import { Interpreter, ops } from '../src/interp/index.js';
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

describe('ops by hand', () => {
  // inp[r][c] = 4r + c + 1, one sample, one channel; 3x3 kernel, stride 2, padding 1 → 2x2 output
  const inp = f64(Array.from({ length: 16 }, (_, i) => i + 1));
  const g = { B: 1, C: 1, H: 4, W: 4, OC: 1, OH: 2, OW: 2, KH: 3, KW: 3, SH: 2, SW: 2, PH: 1, PW: 1 };

  it('conv2d forward with padding and stride on a 4x4 input', () => {
    const out = new Float64Array(4);
    const centre = f64([0, 0, 0, 0, 1, 0, 0, 0, 0]);
    ops.conv2dForward(out, inp, centre, null, g);
    expect([...out]).toEqual([1, 3, 9, 11]); // inputs at (0,0), (0,2), (2,0), (2,2)
    ops.conv2dForward(out, inp, new Float64Array(9).fill(1), f64([0.5]), g);
    // window sums: rows 0-1 × cols 0-1, rows 0-1 × cols 1-3, rows 1-3 × cols 0-1, rows 1-3 × cols 1-3
    expect([...out]).toEqual([14.5, 30.5, 57.5, 99.5]);
  });

  it('conv2d backward with padding and stride on a 4x4 input', () => {
    const dinp = new Float64Array(16);
    const dweight = new Float64Array(9);
    const dbias = new Float64Array(1);
    ops.conv2dBackward(dinp, dweight, dbias, f64([1, 1, 1, 1]), inp, new Float64Array(9).fill(1), g);
    // each input pixel is read by (windows over its row)·(windows over its column): rows/cols 0..3 → 1, 2, 1, 1
    expect([...dinp]).toEqual([1, 2, 1, 1, 2, 4, 2, 2, 1, 2, 1, 1, 1, 2, 1, 1]);
    // dW[ky][kx] = Σ of the inputs that tap reads: ky=0 reads row 1, ky=1 rows 0,2, ky=2 rows 1,3 (same for columns)
    expect([...dweight]).toEqual([6, 12, 14, 12, 24, 28, 20, 40, 44]);
    expect([...dbias]).toEqual([4]);
  });

  it('maxpool2d sends the gradient to the first maximum in row-major window order', () => {
    // one channel 2x4: window 1 [[1,3],[3,2]] (tie between (0,1) and (1,0)), window 2 all zeros (ReLU zeros)
    const x = f64([1, 3, 0, 0, 3, 2, 0, 0]);
    const pg = { B: 1, C: 1, H: 2, W: 4, OH: 1, OW: 2, KH: 2, KW: 2, SH: 2, SW: 2, PH: 0, PW: 0 };
    const out = new Float64Array(2);
    const argmax = new Int32Array(2);
    ops.maxpool2dForward(out, argmax, x, pg);
    expect([...out]).toEqual([3, 0]);
    expect([...argmax]).toEqual([1, 2]);
    const dinp = new Float64Array(8);
    ops.maxpool2dBackward(dinp, f64([5, 7]), argmax);
    expect([...dinp]).toEqual([0, 5, 7, 0, 0, 0, 0, 0]);
  });

  it('maxpool2d padding is −∞, avgpool2d padding counts as zeros in the mean', () => {
    const x = f64([-5, -3, -4, -6]);
    const pg = { B: 1, C: 1, H: 2, W: 2, OH: 2, OW: 2, KH: 2, KW: 2, SH: 2, SW: 2, PH: 1, PW: 1 };
    const out = new Float64Array(4);
    ops.maxpool2dForward(out, new Int32Array(4), x, pg);
    expect([...out]).toEqual([-5, -3, -4, -6]);
    ops.avgpool2dForward(out, x, pg);
    expect([...out]).toEqual([-5 / 4, -3 / 4, -4 / 4, -6 / 4]);
    const dinp = new Float64Array(4);
    ops.avgpool2dBackward(dinp, f64([1, 2, 3, 4]), pg);
    expect([...dinp]).toEqual([0.25, 0.5, 0.75, 1]);
  });

  it('relu has gradient 0 at 0; tanh uses 1 − y²', () => {
    const x = f64([0, 1, -1, 2]);
    const y = new Float64Array(4);
    ops.reluForward(y, x);
    const d = new Float64Array(4);
    ops.reluBackward(d, f64([1, 1, 1, 1]), y);
    expect([...d]).toEqual([0, 1, 0, 1]);
    ops.tanhForward(y, x);
    d.fill(0);
    ops.tanhBackward(d, f64([1, 1, 1, 1]), y);
    expectClose(
      d,
      [...x].map((v) => 1 / Math.cosh(v) ** 2),
    );
  });

  it('cross-entropy: mean of logsumexp − z[label], gradient (softmax − onehot)/B', () => {
    const { loss, dlogits } = ops.crossEntropy([0, 0, 1, 0], [0, 1], 2, 2);
    const e = Math.E;
    expect(loss).toBeCloseTo((Math.log(2) + Math.log(1 + e)) / 2, 14);
    expectClose(dlogits, [-0.25, 0.25, e / (1 + e) / 2, (1 / (1 + e) - 1) / 2], 14);
    expect(() => ops.crossEntropy([0, 0], [2], 1, 2)).toThrow(/label 0 is 2/);
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

  it('Net at batch 8 trains a step in well under a second', () => {
    const it = Interpreter.fromModel(new Net());
    const xs = new Float32Array(8 * 3 * 32 * 32).map(() => rng.normal());
    const t0 = performance.now();
    const r = it.trainStep(xs, [0, 1, 0, 1, 1, 0, 0, 1], 8, { lr: 0.01 });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(Number.isFinite(r.loss)).toBe(true);
  });

  it('NetResDeep (32 channels, 10 shared blocks) trains a step at batch 64 in seconds', () => {
    manualSeed(0);
    const it = Interpreter.fromModel(new NetResDeep());
    const B = 64;
    const xs = new Float32Array(B * 3 * 32 * 32).map(() => rng.normal());
    const t0 = performance.now();
    const r = it.trainStep(
      xs,
      Array.from({ length: B }, (_, i) => i % 2),
      B,
      { lr: 0.01, momentum: 0.9 },
    );
    const ms = performance.now() - t0;
    console.log(`NetResDeep batch ${B}: one training step in ${(ms / 1000).toFixed(2)} s`);
    expect(ms).toBeLessThan(30_000);
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
