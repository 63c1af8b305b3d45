// The CPU's tuned conv paths beyond stride-1 dense convs, compiled and checked
// against the interpreter (float64): stride 2 (3x3, 5x5, 1x1 shortcuts,
// non-square with stride [2, 1]), 1x1 convs taken as a GEMM over the pixels,
// depthwise (groups = channels) at stride 1 and 2, a grouped conv, on odd and
// even sizes, with bias or without, with a fused activation or none, and an
// input gradient that accumulates (a value read by a strided conv and a 1x1
// shortcut). Each conv under test reads the output of a stem conv, so its input
// gradient reaches the stem's weight and bias gradients; forward, weight and
// bias gradients are compared directly. Batches 1, 5 and 17 (not a multiple of
// any vector width, so threads get uneven slices). Rows shorter than a vector
// are packed several to a vector (Packed).
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nn, torch, type Tensor } from '../src/graph/index.js';
import type { HostTensor } from '../src/graph/ir.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { plan } from '../src/codegen/cpu/plan.js';
import { MARCH } from '../src/codegen/isa.js';
import { cpuFastConv } from '../src/ops/conv2d.js';
import { compiledBackend } from '../src/runtime/backend.js';
import { stepSeed } from '../src/train/rules.js';
import { Rng } from '../src/util/rng.js';

/** Odd sizes: stride-2 3x3 + 1x1 shortcut into one add, depthwise stride 2, grouped non-square [2, 1]. */
class Strided extends nn.Module {
  static inputShape = [3, 13, 11];
  stem = new nn.Conv2d(3, 4, { kernelSize: 3, padding: 1 });
  main = new nn.Conv2d(4, 6, { kernelSize: 3, stride: 2, padding: 1 });
  short = new nn.Conv2d(4, 6, { kernelSize: 1, stride: 2, bias: false });
  dw = new nn.Conv2d(6, 6, { kernelSize: 3, stride: 2, padding: 1, groups: 6, bias: false });
  grouped = new nn.Conv2d(6, 4, { kernelSize: [3, 2], stride: [2, 1], padding: [1, 0], groups: 2 });
  fc = new nn.Linear(4 * 2 * 2, 3);

  forward(x: Tensor): Tensor {
    const a = torch.relu(this.stem(x)); // [4, 13, 11]
    const o = torch.add(torch.tanh(this.main(a)), this.short(a)); // [6, 7, 6]
    const d = torch.relu(this.dw(o)); // [6, 4, 3]
    return this.fc(torch.flatten(this.grouped(d))); // [4, 2, 2]
  }
}

/** Even sizes: 1x1 as a GEMM (8x8 = a whole number of vectors), depthwise stride 1, 1x1 stride 2, 5x5 stride 2, 1x1 on 2x2. */
class Pointwise extends nn.Module {
  static inputShape = [3, 8, 8];
  stem = new nn.Conv2d(3, 4, { kernelSize: 3, padding: 1 });
  pw = new nn.Conv2d(4, 6, { kernelSize: 1 });
  dw = new nn.Conv2d(6, 6, { kernelSize: 3, padding: 1, groups: 6 });
  down = new nn.Conv2d(6, 4, { kernelSize: 1, stride: 2, bias: false });
  c5 = new nn.Conv2d(4, 4, { kernelSize: 5, stride: 2, padding: 2 });
  pw2 = new nn.Conv2d(4, 5, { kernelSize: 1 });
  fc = new nn.Linear(5 * 2 * 2, 3);

  forward(x: Tensor): Tensor {
    let a = torch.relu(this.stem(x)); // [4, 8, 8]
    a = torch.relu(this.pw(a)); // [6, 8, 8]
    a = torch.tanh(this.dw(a)); // [6, 8, 8]
    a = torch.relu(this.down(a)); // [4, 4, 4]
    a = this.c5(a); // [4, 2, 2]
    return this.fc(torch.flatten(torch.relu(this.pw2(a))));
  }
}

/** A ResNet downsampling block at 16x16 -> 8x8 (rows of 8 fill half a 16-lane vector), then depthwise stride 2. */
class Down extends nn.Module {
  static inputShape = [3, 16, 16];
  stem = new nn.Conv2d(3, 8, { kernelSize: 3, padding: 1, bias: false });
  conv = new nn.Conv2d(8, 16, { kernelSize: 3, stride: 2, padding: 1, bias: false });
  short = new nn.Conv2d(8, 16, { kernelSize: 1, stride: 2, bias: false });
  dw = new nn.Conv2d(16, 16, { kernelSize: 3, stride: 2, padding: 1, groups: 16, bias: false });
  fc = new nn.Linear(16 * 4 * 4, 3);

  forward(x: Tensor): Tensor {
    const a = torch.relu(this.stem(x)); // [8, 16, 16]
    const o = torch.relu(torch.add(torch.relu(this.conv(a)), this.short(a))); // [16, 8, 8]
    return this.fc(torch.flatten(this.dw(o))); // [16, 4, 4]
  }
}

/**
 * Rows shorter than a vector, packed (conv_packed): 8x8 and 4x4 "same" convs with
 * bias or none, an activation or none, 3x3, 1x3 and 5x5 kernels, depthwise, and
 * an input gradient that accumulates (a value read by two packed convs).
 */
class Packed extends nn.Module {
  static inputShape = [3, 8, 8];
  stem = new nn.Conv2d(3, 8, { kernelSize: 3, padding: 1 });
  a = new nn.Conv2d(8, 8, { kernelSize: 3, padding: 1, bias: false });
  wide = new nn.Conv2d(8, 8, { kernelSize: [1, 3], padding: [0, 1] });
  dw = new nn.Conv2d(8, 8, { kernelSize: 3, padding: 1, groups: 8 });
  down = new nn.Conv2d(8, 8, { kernelSize: 3, stride: 2, padding: 1, bias: false });
  small = new nn.Conv2d(8, 6, { kernelSize: 3, padding: 1 });
  big = new nn.Conv2d(6, 4, { kernelSize: 5, padding: 2, bias: false });
  fc = new nn.Linear(4 * 4 * 4, 3);

  forward(x: Tensor): Tensor {
    const s = torch.relu(this.stem(x)); // [8, 8, 8]
    const o = torch.add(torch.tanh(this.a(s)), this.wide(s)); // [8, 8, 8]
    const d = torch.relu(this.down(torch.relu(this.dw(o)))); // [8, 4, 4]
    return this.fc(torch.flatten(this.big(torch.tanh(this.small(d))))); // [4, 4, 4]
  }
}

/**
 * Winograd F(2x2, 3x3) (conv_wino: stride 1, padding 1, 64 channels or more in whole vectors): with bias
 * and a fused activation or neither, 80 channels (an odd number of 16-lane vectors, an even number of
 * 8-lane ones), an input gradient that accumulates, and d (32 channels: below the rule, direct) between
 * them and the head. Batch 17 gives each thread 8 images or more (Winograd), batches 1 and 5 take the
 * direct kernels, and batch 7 splits 4/3 between two threads: one takes Winograd, the other the direct
 * kernels, in the same call (their partial gradients meet).
 */
class Wino extends nn.Module {
  static inputShape = [3, 16, 16];
  stem = new nn.Conv2d(3, 64, { kernelSize: 3, padding: 1 });
  a = new nn.Conv2d(64, 64, { kernelSize: 3, padding: 1 });
  b = new nn.Conv2d(64, 80, { kernelSize: 3, padding: 1, bias: false });
  c = new nn.Conv2d(64, 80, { kernelSize: 3, padding: 1 });
  d = new nn.Conv2d(80, 32, { kernelSize: 3, padding: 1 });
  pool = new nn.MaxPool2d(2);
  fc = new nn.Linear(32 * 4 * 4, 3);

  forward(x: Tensor): Tensor {
    const s = torch.relu(this.stem(x)); // [64, 16, 16]
    const o = torch.add(torch.tanh(this.b(torch.relu(this.a(s)))), this.c(s)); // [80, 16, 16]
    const p = torch.relu(this.d(this.pool(o))); // [32, 8, 8]
    return this.fc(torch.flatten(this.pool(p))); // [32, 4, 4]
  }
}

const models = { Strided, Pointwise, Down, Packed, Wino } as const;

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / (m + 1e-12);
}

describe('compiled CPU == interpreter on the strided, 1x1 and depthwise conv paths', () => {
  it.each(Object.keys(models) as (keyof typeof models)[])('%s: every conv takes the tuned path', (name) => {
    const graph = trace(new models[name]());
    for (const n of graph.nodes) if (n.op === 'conv2d') expect(cpuFastConv(n), n.module).toBe(true);
    const kinds = plan(graph).kernels.map((k) => k.kind);
    expect(kinds.filter((k) => k.startsWith('conv'))).not.toContain('convg_fwd');
  });

  it.each((Object.keys(models) as (keyof typeof models)[]).flatMap((n) => [1, 5, 7, 17].map((b) => [n, b] as const)))(
    '%s, batch %i',
    async (name, batch) => {
      const model = new models[name]();
      const [C, H, W] = models[name].inputShape;
      const graph = trace(model);
      const state = model.stateDict() as Map<string, HostTensor>;
      const interp = new Interpreter(graph, state);
      // a folder per -march: the AVX2 run of these checks (codegen-conv-paths-avx2) may run beside this one
      const outRoot = path.join(os.tmpdir(), `tk-test-conv-paths-${MARCH}`);
      const comp = await compiledBackend(graph, { outRoot, maxBatch: 17 });
      comp.loadState(state);
      const rng = new Rng(batch + 100 * name.length);
      const x = Float32Array.from({ length: batch * C * H * W }, () => rng.normal());
      const y = Int32Array.from({ length: batch }, () => rng.int(3));
      expect(relErr(comp.forward(x, batch, { train: false }), interp.forward(x, batch, { train: false }))).toBeLessThan(1e-5);
      const opts = { lr: 0.05, momentum: 0.9, weightDecay: 1e-3 };
      for (let s = 0; s < 3; s++) {
        const ri = interp.trainStep(x, y, batch, opts, stepSeed(1, s));
        const rc = comp.trainStep(x, y, batch, opts, stepSeed(1, s));
        expect(Math.abs(rc.loss - ri.loss)).toBeLessThan(1e-5 + 1e-4 * Math.abs(ri.loss));
        for (const [k, g] of ri.grads) expect(relErr(rc.grads.get(k)!, g), `step ${s} grad ${k}`).toBeLessThan(s === 0 ? 1e-4 : 2e-3);
      }
      for (const [k, t] of interp.stateDict())
        expect(relErr(comp.stateDict().get(k)!.data as Float32Array, t.data as Float32Array), k).toBeLessThan(1e-4);
    },
  );
});
