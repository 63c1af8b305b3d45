import { describe, expect, it } from 'vitest';
import { F, nn, trace, manualSeed, ModelError, torch } from 'tensorkiln';
import type { Tensor } from 'tensorkiln';
import { bookModels, Net, NetBatchNorm, NetResDeep, ResBlock } from '../models/book.js';
import { inspectGraph } from '../src/cli/inspect.js';
import { ForgotView, Lazy, WrongChannels, WrongView } from './fixtures/bad-models.js';
import fs from 'node:fs';
import path from 'node:path';

const golden = path.resolve(import.meta.dirname, '../../shared/golden');

// Per-parameter numel lists from PyTorch 1.13: [p.numel() for p in Model().parameters()].
const pytorchNumel: Record<string, number[]> = {
  Net: [432, 16, 1152, 8, 16384, 32, 64, 2],
  NetWidth: [864, 32, 4608, 16, 32768, 32, 64, 2],
  NetDropout: [864, 32, 4608, 16, 32768, 32, 64, 2],
  NetBatchNorm: [864, 32, 32, 32, 4608, 16, 16, 16, 32768, 32, 64, 2],
  NetDepth: [864, 32, 4608, 16, 2304, 16, 8192, 32, 64, 2],
  NetRes: [864, 32, 4608, 16, 2304, 16, 8192, 32, 64, 2],
  NetResDeep: [864, 32, 9216, 32, 32, 65536, 32, 64, 2],
};
const pytorchTotal: Record<string, number> = {
  Net: 18090,
  NetWidth: 38386,
  NetDropout: 38386,
  NetBatchNorm: 38482,
  NetDepth: 16130,
  NetRes: 16130,
  NetResDeep: 75810,
};

function headerKeys(file: string): string[] {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))).filter((k) => k !== '__metadata__');
}

describe('book models', () => {
  for (const [name, Model] of Object.entries(bookModels)) {
    it(`${name}: parameter counts equal PyTorch's`, () => {
      const r = inspectGraph(trace(new Model()));
      expect(r.params.map((p) => p.numel)).toEqual(pytorchNumel[name]);
      expect(r.total).toBe(pytorchTotal[name]);
      expect(r.layers.reduce((a, l) => a + l.params, 0)).toBe(r.total);
    });
  }

  it('state_dict keys and order equal the golden PyTorch files', () => {
    for (const c of ['Net', 'NetWidth', 'NetDepth', 'NetRes', 'NetBatchNorm']) {
      const json = JSON.parse(fs.readFileSync(path.join(golden, c, 'case.json'), 'utf8'));
      const Model = bookModels[json.model as keyof typeof bookModels];
      const model = new Model({ nChans1: json.args.n_chans1 });
      expect([...model.stateDict().keys()]).toEqual(headerKeys(path.join(golden, c, 'weights.safetensors')));
      expect(model.namedParameters().map(([k]) => k)).toEqual(json.param_names);
    }
  });

  it('NetResDeep shares one ResBlock: one set of parameters, ten state_dict aliases', () => {
    const model = new NetResDeep();
    const keys = [...model.stateDict().keys()];
    expect(keys.length).toBe(2 + 10 * 6 + 4);
    expect(keys.slice(2, 8)).toEqual(
      [
        'conv.weight',
        'batch_norm.weight',
        'batch_norm.bias',
        'batch_norm.running_mean',
        'batch_norm.running_var',
        'batch_norm.num_batches_tracked',
      ].map((k) => `resblocks.0.${k}`),
    );
    const g = trace(model);
    const convs = g.nodes.filter((n) => n.op === 'conv2d' && n.module === 'resblocks.0.conv');
    expect(convs.length).toBe(10);
    expect(new Set(convs.map((n) => n.params[0]))).toEqual(new Set(['resblocks.0.conv.weight']));
    expect(g.keys['resblocks.7.batch_norm.running_var']).toBe('resblocks.0.batch_norm.running_var');
    expect(g.state.length).toBe(12);
  });

  it('traces NetRes skip connection as an add of the pooled stage-2 output', () => {
    const g = trace(new bookModels.NetRes());
    const add = g.nodes.find((n) => n.op === 'binary' && n.attrs.fn === 'add')!;
    const relu = g.nodes[add.inputs[0]];
    expect(relu.op === 'unary' && relu.attrs.fn).toBe('relu');
    expect(g.nodes[add.inputs[1]].op).toBe('maxpool2d');
    expect(add.source).toMatch(/models\/book\.ts:\d+$/);
  });

  it('records model.ts lines and module paths', () => {
    const g = trace(new Net());
    const conv2 = g.nodes.find((n) => n.module === 'conv2')!;
    const line =
      fs
        .readFileSync('models/book.ts', 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('this.conv2(out)')) + 1;
    expect(conv2.source).toBe(`models/book.ts:${line}`);
    expect(g.nodes[g.output].shape).toEqual([2]);
  });
});

describe('shape errors read like hints', () => {
  it('forgot the view', () => {
    const err = (() => {
      try {
        trace(new ForgotView());
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ModelError);
    expect(err!.message).toContain('fc1 (Linear(4096, 2))');
    expect(err!.message).toContain('test/fixtures/bad-models.ts:10');
    expect(err!.message).toContain('[B, 16, 16, 16]');
    expect(err!.message).toContain('forgot the view? add `out = out.view(-1, 4096)`');
  });

  it('a view of the wrong size', () => {
    expect(() => trace(new WrongView())).toThrow(
      /view\(-1, 512\) at test\/fixtures\/bad-models\.ts:19: the input \[B, 8, 16, 16\] has 2048 values per sample, not 512/,
    );
  });

  it('wrong input channels', () => {
    expect(() => trace(new WrongChannels())).toThrow(
      /conv2 \(Conv2d\(32, 8\)\) at test\/fixtures\/bad-models\.ts:27: expects 32 input channels, got \[B, 16, 32, 32\]/,
    );
  });

  it('bad conv and pool sizes name the option', () => {
    expect(() => new nn.Conv2d(3, 4, { kernelSize: 3, stride: 0 })).toThrow(
      /^Conv2d\(3, 4\): stride must be an integer >= 1 or a pair of them, got 0$/,
    );
    expect(() => new nn.Conv2d(3, 0, { kernelSize: [3, 2.5], padding: -1 })).toThrow(
      /channels must be positive integers, got 0; kernelSize .* got \[3,2\.5\]; padding must be an integer >= 0/,
    );
    class ZeroPool extends nn.Module {
      forward(x: Tensor): Tensor {
        return F.maxPool2d(x, 2, 0);
      }
    }
    expect(() => trace(new ZeroPool())).toThrow(
      /max_pool2d\(2\) at test\/graph\.test\.ts:\d+: stride must be an integer >= 1 or a pair of them, got 0/,
    );
  });

  it('a bad input shape', () => {
    expect(() => trace(new Net(), [3, 32])).toThrow(/C,H,W/);
    expect(() => trace(new Net(), [1, 32, 32])).toThrow(/conv1 \(Conv2d\(3, 16\)\).*expects 3 input channels/);
    expect(() => trace(new Net(), [3, 8, 8])).toThrow(/view\(-1, 512\).*has 32 values per sample/);
  });

  it('calling forward outside a trace says so', () => {
    expect(() => new Net().forward(null as unknown as Tensor)).toThrow(/only while tracing/);
  });
});

describe('modules', () => {
  it('LazyLinear infers its input features at the trace', () => {
    const m = new Lazy();
    trace(m);
    expect(m.fc1.weight.shape).toEqual([2, 4 * 8 * 8]);
    expect(inspectGraph(trace(m)).total).toBe(4 * 27 + 4 + 2 * 256 + 2);
  });

  it('train() and eval() reach every submodule', () => {
    const m = new NetResDeep({ nBlocks: 2 });
    m.eval();
    expect(m.namedModules().every(([, s]) => !s.training)).toBe(true);
    m.train();
    expect((m.resblocks.at(1) as ResBlock).batch_norm.training).toBe(true);
  });

  it('default init follows PyTorch: U(±1/√fan_in) for conv weight and bias', () => {
    manualSeed(1);
    const c = new nn.Conv2d(16, 64, { kernelSize: 3 });
    const bound = 1 / Math.sqrt(16 * 9);
    const w = [...c.weight.data];
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.98 * bound);
    const variance = w.reduce((a, v) => a + v * v, 0) / w.length;
    expect(variance).toBeCloseTo((bound * bound) / 3, 4);
    expect(Math.max(...[...c.bias!.data].map(Math.abs))).toBeLessThanOrEqual(bound);
  });

  it('kaimingNormal_ (relu) has std √(2/fan_in); ResBlock sets BN weight 0.5, bias 0', () => {
    manualSeed(2);
    const b = new ResBlock(32);
    const w = [...b.conv.weight.data];
    const std = Math.sqrt(w.reduce((a, v) => a + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(Math.sqrt(2 / 288) * 0.97);
    expect(std).toBeLessThan(Math.sqrt(2 / 288) * 1.03);
    expect([...b.batch_norm.weight.data].every((v) => v === 0.5)).toBe(true);
    expect(b.conv.bias).toBeNull();
  });

  it('the same seed gives the same weights', () => {
    manualSeed(7);
    const a = new Net().stateDict();
    manualSeed(7);
    const b = new Net().stateDict();
    expect(a.get('conv1.weight')!.data).toEqual(b.get('conv1.weight')!.data);
  });

  it('loadStateDict is strict and lists every problem, changing nothing', () => {
    const m = new Net();
    const before = m.stateDict();
    const sd = new NetBatchNorm().stateDict();
    const err = (() => {
      try {
        m.loadStateDict(sd);
      } catch (e) {
        return e as Error;
      }
    })()!;
    expect(err.message).toMatch(/'conv1\.weight': shape \[32,3,3,3\] in the file, \[16,3,3,3\] in the model/);
    expect(err.message).toMatch(/unexpected key 'conv1_batchnorm\.running_mean'/);
    expect(m.stateDict().get('conv1.weight')!.data).toEqual(before.get('conv1.weight')!.data);
    const partial = new Map(before);
    partial.delete('fc2.bias');
    expect(() => m.loadStateDict(partial)).toThrow(/missing key 'fc2\.bias'/);
    const other = new Net();
    other.loadStateDict(before);
    expect(other.stateDict().get('fc1.weight')!.data).toEqual(before.get('fc1.weight')!.data);
  });

  it('Sequential and functional ops compose', () => {
    class Small extends nn.Module {
      body = new nn.Sequential(new nn.Conv2d(3, 4, 3), new nn.ReLU(), new nn.AvgPool2d(2), new nn.Dropout2d(0.2), new nn.Flatten());
      head = new nn.Linear(4 * 15 * 15, 3);
      forward(x: Tensor): Tensor {
        return this.head(F.dropout2d(this.body(x), 0.5, false));
      }
    }
    const g = trace(new Small());
    expect(g.nodes.map((n) => n.op)).toEqual(['input', 'conv2d', 'unary', 'avgpool2d', 'dropout', 'reshape', 'linear']);
    expect(g.nodes[1].module).toBe('body.0');
    expect([...new Small().stateDict().keys()]).toEqual(['body.0.weight', 'body.0.bias', 'head.weight', 'head.bias']);
  });
});

describe('layer options are never ignored', () => {
  it('Conv2d builds groups and dilation as PyTorch does, and refuses padding modes it does not implement and unknown options, naming the line', () => {
    const make = (o: object) => () => new nn.Conv2d(4, 4, { kernelSize: 3, ...o } as never);
    const depthwise = make({ groups: 4 })();
    expect(depthwise.weight.shape).toEqual([4, 1, 3, 3]); // PyTorch: [out, in/groups, kh, kw]
    expect(depthwise.parameters().reduce((s, p) => s + p.data.length, 0)).toBe(4 * 9 + 4);
    expect(make({ groups: 3 })).toThrow(/divisible by groups \(3\)/);
    expect(make({ paddingMode: 'reflect' })).toThrow(
      /Conv2d\(4, 4\) at test\/graph\.test\.ts:\d+: paddingMode: "reflect" is not supported/,
    );
    expect(make({ kernel_size: 3 })).toThrow(/unknown option 'kernel_size'/);
    expect(make({ padding: 'same', stride: 2 })).toThrow(/padding 'same' needs stride 1/);
    expect(make({ padding: 'same', dilation: 2 })().padding).toEqual([2, 2]);
    const even = new nn.Conv2d(4, 4, { kernelSize: 4, padding: 'same' }); // PyTorch pads 1 before, 2 after
    expect([even.padding, even.paddingAfter]).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  it('Linear, BatchNorm2d and the pools refuse unknown options', () => {
    expect(() => new nn.Linear(3, 2, { bais: false } as never)).toThrow(/Linear\(3, 2\) .*unknown option 'bais'/);
    expect(() => new nn.BatchNorm2d(3, { affine: false } as never)).toThrow(/unknown option 'affine'/);
    class P extends nn.Module {
      p = new nn.MaxPool2d(2, { ceilMode: true } as never);
      forward(x: Tensor): Tensor {
        return this.p(x).flatten();
      }
    }
    expect(() => trace(new P())).toThrow(/MaxPool2d .*unknown option 'ceilMode'/);
  });
});

describe('what the builder API does not have is an error naming it and the line', () => {
  it('torch.roll, F.interpolate, nn.LSTM, x + y, and layers in a Sequential report their own line', () => {
    const t = torch as unknown as Record<string, unknown>;
    expect(() => t.roll).toThrow(/^torch\.roll at test\/graph\.test\.ts:\d+: not supported by tensorkiln \(it has: .*cat/);
    expect(() => (F as unknown as Record<string, unknown>).interpolate).toThrow(/F\.interpolate at test\/graph\.test\.ts:\d+/);
    expect(() => (nn as unknown as Record<string, unknown>).LSTM).toThrow(/nn\.LSTM .*not supported/);
    class Plus extends nn.Module {
      forward(x: Tensor): Tensor {
        return ((x as unknown as number) + (x as unknown as number)) as unknown as Tensor;
      }
    }
    expect(() => trace(new Plus())).toThrow(/test\/graph\.test\.ts:\d+: a tensor Tensor\[B, 3, 32, 32\] was used in plain JS arithmetic/);
    const here = Number(/graph\.test\.ts:(\d+)/.exec(new Error().stack ?? '')![1]);
    const seq = new nn.Sequential(
      new nn.Conv2d(3, 4, { kernelSize: 3 }),
      new nn.Linear(4, 2), // line here + 3: a shape error
    );
    expect(() => trace(seq)).toThrow(new RegExp(`1 \\(Linear\\(4, 2\\)\\) at test/graph\\.test\\.ts:${here + 3}:`));
  });
});
