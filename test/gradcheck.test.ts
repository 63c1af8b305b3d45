// Central finite differences (float64) against the interpreter's backward, for
// every op and for models with shared modules, skip connections and NetResDeep.
import { describe, expect, it } from 'vitest';
import { F, manualSeed, nn, torch, type Tensor } from 'tensorkiln';
import { NetResDeep } from '../models/book.js';
import { gradcheck, type GradcheckOptions } from '../src/check/gradcheck.js';
import { Interpreter } from '../src/interp/index.js';
import { Rng } from '../src/util/rng.js';

/** Interpreter of `model` on inputs [C, H, W], BatchNorm affine parameters moved off 1 and 0 so they matter. */
function interp(model: nn.Module, inputShape: number[]): Interpreter {
  const it = Interpreter.fromModel(model, inputShape);
  const rng = new Rng(7);
  for (const node of it.graph.nodes)
    if (node.op === 'batchnorm') {
      it.values.get(node.params[0])!.forEach((_, i, a) => (a[i] = 1 + 0.5 * rng.normal()));
      it.values.get(node.params[1])!.forEach((_, i, a) => (a[i] = 0.3 * rng.normal()));
    }
  return it;
}

function randomInput(batch: number, shape: number[], seed = 3): Float64Array {
  const rng = new Rng(seed);
  return new Float64Array(batch * shape.reduce((a, b) => a * b, 1)).map(() => rng.normal());
}

/** Runs the check and expects every tensor to pass; returns the names checked. */
function check(model: nn.Module, inputShape: number[], batch: number, opts: GradcheckOptions = {}): string[] {
  manualSeed(11);
  const it = interp(model, inputShape);
  const results = gradcheck(it, randomInput(batch, inputShape), batch, opts);
  const failed = results.filter((r) => !r.pass);
  expect(failed, JSON.stringify(failed, null, 1)).toEqual([]);
  return results.map((r) => r.name);
}

/** A model applying `f` to its input, then flattening (so any op's input gradient is checked). */
function fn(f: (x: Tensor) => Tensor): nn.Module {
  return new (class extends nn.Module {
    forward(x: Tensor): Tensor {
      return f(x).flatten();
    }
  })();
}

describe('gradcheck: every op', () => {
  it('conv2d: stride 2, padding, rectangular kernel, no bias; and stride 1 with bias', () => {
    class M extends nn.Module {
      a = new nn.Conv2d(3, 4, { kernelSize: [3, 2], stride: 2, padding: [1, 0], bias: false });
      b = new nn.Conv2d(4, 2, { kernelSize: 3, padding: 1 });
      forward(x: Tensor): Tensor {
        return this.b(this.a(x)).flatten();
      }
    }
    expect(check(new M(), [3, 7, 6], 2)).toEqual(['a.weight', 'b.weight', 'b.bias', 'input']);
  });

  it('conv2d: stride [2, 1], padding 2 larger than needed, 1x1 kernel', () => {
    class M extends nn.Module {
      a = new nn.Conv2d(2, 3, { kernelSize: [2, 3], stride: [2, 1], padding: 2 });
      b = new nn.Conv2d(3, 2, { kernelSize: 1 });
      forward(x: Tensor): Tensor {
        return this.b(this.a(x)).flatten();
      }
    }
    check(new M(), [2, 5, 4], 3);
  });

  it('linear with and without bias, after a reshape', () => {
    class M extends nn.Module {
      fc1 = new nn.Linear(12, 5);
      fc2 = new nn.Linear(5, 3, { bias: false });
      forward(x: Tensor): Tensor {
        return this.fc2(torch.tanh(this.fc1(x.view(-1, 12))));
      }
    }
    expect(check(new M(), [3, 2, 2], 4)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'input']);
  });

  it('maxpool2d: 2x2, and 3x3 stride 2 padding 1', () => {
    check(
      fn((x) => F.maxPool2d(x, 2)),
      [2, 6, 6],
      2,
    );
    check(
      fn((x) => F.maxPool2d(x, 3, 2, 1)),
      [2, 7, 5],
      2,
    );
  });

  it('avgpool2d with padding (count_include_pad), rectangular window', () => {
    check(
      fn((x) => F.avgPool2d(x, 3, 2, 1)),
      [2, 7, 6],
      2,
    );
    check(
      fn((x) => F.avgPool2d(x, [2, 3], [1, 2])),
      [1, 5, 7],
      2,
    );
  });

  it('batchnorm2d in train mode (batch statistics) and eval mode (running statistics)', () => {
    class M extends nn.Module {
      bn = new nn.BatchNorm2d(3);
      forward(x: Tensor): Tensor {
        return torch.tanh(this.bn(x)).flatten();
      }
    }
    expect(check(new M(), [3, 4, 5], 3, { train: true })).toEqual(['bn.weight', 'bn.bias', 'input']);
    check(new M(), [3, 4, 5], 3, { train: false });
  });

  it('dropout and dropout2d with a fixed seed', () => {
    check(
      fn((x) => torch.tanh(F.dropout(x, 0.3))),
      [2, 3, 4],
      3,
      { dropoutSeed: 42 },
    );
    check(
      fn((x) => torch.tanh(F.dropout2d(x, 0.5))),
      [4, 3, 3],
      3,
      { dropoutSeed: 9 },
    );
    check(
      fn((x) => torch.tanh(F.dropout2d(x, 0.5))),
      [4, 3, 3],
      3,
      { dropoutSeed: 9, train: false },
    );
  });

  it('relu, tanh, add, reshape', () => {
    check(
      fn((x) => torch.relu(x)),
      [2, 3, 3],
      2,
    );
    check(
      fn((x) => torch.tanh(x)),
      [2, 3, 3],
      2,
    );
    check(
      fn((x) => torch.tanh(x).add(x)),
      [2, 3, 3],
      2,
    );
    check(
      fn((x) => x.add(x)),
      [1, 2, 2],
      2,
    );
    check(
      fn((x) => x.view(-1, 2, 9).relu()),
      [2, 3, 3],
      2,
    );
  });
});

describe('gradcheck: models', () => {
  it('a module used twice (weights shared, gradients summed) with a skip connection', () => {
    class Shared extends nn.Module {
      stem = new nn.Conv2d(2, 3, { kernelSize: 3, padding: 1 });
      block = new nn.Conv2d(3, 3, { kernelSize: 3, padding: 1 });
      fc = new nn.Linear(3 * 2 * 2, 2);
      forward(x: Tensor): Tensor {
        let out = torch.tanh(this.stem(x));
        out = torch.tanh(this.block(out)).add(out); // skip
        out = F.maxPool2d(torch.relu(this.block(out)), 2); // the same block again
        return this.fc(out.view(-1, 12));
      }
    }
    const model = new Shared();
    const it = Interpreter.fromModel(model, [2, 4, 4]);
    const readers = it.graph.nodes.filter((n) => n.params.includes('block.weight'));
    expect(readers).toHaveLength(2);
    expect(check(model, [2, 4, 4], 3)).toEqual(['stem.weight', 'stem.bias', 'block.weight', 'block.bias', 'fc.weight', 'fc.bias', 'input']);
  });

  it('shared gradients are the sum of the per-use gradients', () => {
    // The same network with the two uses given separate (equal) weights: the shared gradient is their sum.
    class Twice extends nn.Module {
      block = new nn.Conv2d(2, 2, { kernelSize: 3, padding: 1 });
      forward(x: Tensor): Tensor {
        return this.block(torch.tanh(this.block(x))).flatten();
      }
    }
    class Split extends nn.Module {
      b1 = new nn.Conv2d(2, 2, { kernelSize: 3, padding: 1 });
      b2 = new nn.Conv2d(2, 2, { kernelSize: 3, padding: 1 });
      forward(x: Tensor): Tensor {
        return this.b2(torch.tanh(this.b1(x))).flatten();
      }
    }
    manualSeed(5);
    const twice = Interpreter.fromModel(new Twice(), [2, 3, 3]);
    const split = Interpreter.fromModel(new Split(), [2, 3, 3]);
    for (const k of ['weight', 'bias']) {
      split.values.get(`b1.${k}`)!.set(twice.values.get(`block.${k}`)!);
      split.values.get(`b2.${k}`)!.set(twice.values.get(`block.${k}`)!);
    }
    const x = randomInput(2, [2, 3, 3]);
    const r = randomInput(1, [2 * 18], 8);
    twice.forward(x, 2, { train: true });
    split.forward(x, 2, { train: true });
    const gt = twice.backward(r);
    const gs = split.backward(r);
    for (const k of ['weight', 'bias']) {
      const sum = gs.get(`b1.${k}`)!.map((v, i) => v + gs.get(`b2.${k}`)![i]);
      gt.get(`block.${k}`)!.forEach((v, i) => expect(v).toBeCloseTo(sum[i], 12));
    }
  });

  it('NetResDeep (2 shared blocks, 4 channels) in train mode', () => {
    manualSeed(3);
    const names = check(new NetResDeep({ nBlocks: 2, nChans1: 4 }), [3, 32, 32], 2, { samples: 8 });
    expect(names).toContain('resblocks.0.conv.weight');
    expect(names).not.toContain('resblocks.1.conv.weight');
  });
});

describe('gradcheck', () => {
  it('leaves the interpreter as it found it (BatchNorm buffers move in train-mode forwards)', () => {
    manualSeed(2);
    const model = new (class extends nn.Module {
      bn = new nn.BatchNorm2d(3);
      forward(x: Tensor): Tensor {
        return torch.flatten(this.bn(x));
      }
    })();
    const it = interp(model, [3, 2, 2]);
    const before = new Map([...it.values].map(([k, v]) => [k, v.slice()]));
    const counters = new Map(it.counters);
    gradcheck(it, randomInput(2, [3, 2, 2]), 2, { samples: 4 });
    for (const [k, v] of before) expect(it.values.get(k), k).toEqual(v);
    expect(it.counters).toEqual(counters);
  });
});
