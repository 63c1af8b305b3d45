// The layers of chapter 8, each a Module whose forward records one graph op
// after checking its input shape (errors name the module, op and line).
import { showShape } from './errors.js';
import { defaultInit, fanIn } from './init.js';
import { numel } from './ir.js';
import { Buffer, Module, Parameter } from './module.js';
import type { Tensor } from './tensor.js';
import { currentTracer } from './tracer.js';
import { callerSource } from './source.js';

type Pair = number | [number, number];
/** A size option as [h, w]; '' when valid, else what is wrong with it (integers >= min). */
function pairOf(v: Pair, what: string, min: number): { value: [number, number]; problem: string } {
  const value: [number, number] = Array.isArray(v) ? v : [v, v];
  const ok = value.length === 2 && value.every((n) => Number.isInteger(n) && n >= min);
  return { value, problem: ok ? '' : `${what} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}` };
}
const zeros = (shape: number[]) => new Parameter(new Float32Array(numel(shape)), shape);

/**
 * Refuses options a layer does not know or does not implement: an ignored
 * option builds a different model than the user wrote (e.g. `groups` dropped
 * gives a dense conv), which is worse than an error.
 */
function checkOptions(layer: string, options: object, known: Record<string, (v: unknown) => boolean>): void {
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined) continue;
    const ok = Object.hasOwn(known, k) ? known[k](v) : false;
    if (!ok) {
      const what = Object.hasOwn(known, k) ? `${k}: ${JSON.stringify(v)} is not supported` : `unknown option '${k}'`;
      throw new Error(`${layer} at ${callerSource()}: ${what} (options: ${Object.keys(known).join(', ')})`);
    }
  }
}
const any = () => true;
const isOne = (v: unknown) => v === 1 || (Array.isArray(v) && v.every((x) => x === 1));

export interface Conv2dOptions {
  kernelSize: Pair;
  stride?: Pair;
  padding?: Pair;
  bias?: boolean;
  /** only 1 for now: other values are refused, never ignored */
  groups?: number;
  /** only 1 for now */
  dilation?: Pair;
  paddingMode?: 'zeros';
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions | number,
  ) {
    super();
    const o = typeof options === 'number' ? { kernelSize: options } : options;
    checkOptions(`Conv2d(${inChannels}, ${outChannels})`, o, {
      kernelSize: any,
      stride: any,
      padding: any,
      bias: any,
      groups: isOne,
      dilation: isOne,
      paddingMode: (v) => v === 'zeros',
    });
    const sizes = [pairOf(o.kernelSize, 'kernelSize', 1), pairOf(o.stride ?? 1, 'stride', 1), pairOf(o.padding ?? 0, 'padding', 0)];
    const bad = [
      ...[inChannels, outChannels].filter((c) => !Number.isInteger(c) || c < 1).map((c) => `channels must be positive integers, got ${c}`),
      ...sizes.map((p) => p.problem).filter(Boolean),
    ];
    if (bad.length) throw new Error(`Conv2d(${inChannels}, ${outChannels}): ${bad.join('; ')}`);
    [this.kernel, this.stride, this.padding] = sizes.map((p) => p.value);
    this.weight = zeros([outChannels, inChannels, ...this.kernel]);
    this.bias = o.bias === false ? null : zeros([outChannels]);
    defaultInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    const op = `Conv2d(${this.inChannels}, ${this.outChannels})`;
    const s = x.sampleShape;
    if (s.length !== 3)
      t.fail(op, `expects an input [B, C, H, W], got ${showShape(s)}`, s.length === 1 ? 'a conv cannot follow a flatten/view' : undefined);
    if (s[0] !== this.inChannels)
      t.fail(
        op,
        `expects ${this.inChannels} input channels, got ${showShape(s)} with ${s[0]}`,
        `use Conv2d(${s[0]}, ${this.outChannels}, ...) or fix the layer before`,
      );
    const [kh, kw] = this.kernel;
    const [sh, sw] = this.stride;
    const [ph, pw] = this.padding;
    const oh = Math.floor((s[1] + 2 * ph - kh) / sh) + 1;
    const ow = Math.floor((s[2] + 2 * pw - kw) / sw) + 1;
    if (oh < 1 || ow < 1) t.fail(op, `kernel ${kh}x${kw} does not fit input ${showShape(s)} with padding ${ph},${pw}`);
    const name = t.nameOf(this);
    return t.record({
      op: 'conv2d',
      inputs: [x.id],
      shape: [this.outChannels, oh, ow],
      params: this.bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`],
      attrs: { inC: this.inChannels, outC: this.outChannels, kh, kw, sh, sw, ph, pw, bias: this.bias !== null },
    });
  }
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(
    public inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean } = {},
  ) {
    super();
    checkOptions(`Linear(${inFeatures}, ${outFeatures})`, options, { bias: any });
    this.weight = zeros([outFeatures, inFeatures]);
    this.bias = options.bias === false ? null : zeros([outFeatures]);
    if (inFeatures > 0) defaultInit(this.weight, this.bias);
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    if (this.inFeatures === 0) this.materialize(x.numel());
    const op = `Linear(${this.inFeatures}, ${this.outFeatures})`;
    const s = x.sampleShape;
    const n = x.numel();
    if (s.length !== 1 && n === this.inFeatures)
      t.fail(
        op,
        `expects a flat input [B, ${this.inFeatures}], got ${showShape(s)}`,
        `forgot the view? add \`out = out.view(-1, ${n})\` before this layer`,
      );
    if (s.length !== 1 || n !== this.inFeatures)
      t.fail(
        op,
        `expects ${this.inFeatures} input features, got ${showShape(s)} (${n} values per sample)`,
        s.length === 1
          ? `the layer before gives ${n} features: use Linear(${n}, ${this.outFeatures}), or nn.LazyLinear(${this.outFeatures}) to infer it`
          : `flatten with \`out.view(-1, ${n})\` and use Linear(${n}, ${this.outFeatures}), or nn.LazyLinear(${this.outFeatures})`,
      );
    const name = t.nameOf(this);
    return t.record({
      op: 'linear',
      inputs: [x.id],
      shape: [this.outFeatures],
      params: this.bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`],
      attrs: { inF: this.inFeatures, outF: this.outFeatures, bias: this.bias !== null },
    });
  }

  private materialize(inFeatures: number): void {
    this.inFeatures = inFeatures;
    this.weight = zeros([this.outFeatures, inFeatures]);
    if (this.bias) this.bias = zeros([this.outFeatures]);
    defaultInit(this.weight, this.bias);
  }
}

/** Linear whose input features are found at the first trace (PyTorch's nn.LazyLinear). */
export class LazyLinear extends Linear {
  constructor(outFeatures: number, options: { bias?: boolean } = {}) {
    super(0, outFeatures, options);
  }
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
}

export function pool(kind: 'maxpool2d' | 'avgpool2d', x: Tensor, kernel: Pair, o: PoolOptions = {}): Tensor {
  const t = currentTracer();
  checkOptions(kind === 'maxpool2d' ? 'MaxPool2d' : 'AvgPool2d', o, { stride: any, padding: any });
  const sizes = [pairOf(kernel, 'kernel size', 1), pairOf(o.stride ?? kernel, 'stride', 1), pairOf(o.padding ?? 0, 'padding', 0)];
  const [[kh, kw], [sh, sw], [ph, pw]] = sizes.map((p) => p.value);
  const op = `${kind === 'maxpool2d' ? 'max_pool2d' : 'avg_pool2d'}(${kh === kw ? kh : `[${kh}, ${kw}]`})`;
  const bad = sizes.map((p) => p.problem).filter(Boolean);
  if (bad.length) t.fail(op, bad.join('; '));
  const s = x.sampleShape;
  if (s.length !== 3) t.fail(op, `expects an input [B, C, H, W], got ${showShape(s)}`);
  if (2 * ph > kh || 2 * pw > kw) t.fail(op, `padding must be at most half the kernel size`);
  const oh = Math.floor((s[1] + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((s[2] + 2 * pw - kw) / sw) + 1;
  if (oh < 1 || ow < 1) t.fail(op, `window ${kh}x${kw} does not fit input ${showShape(s)}`, 'too many pooling layers for this input size?');
  return t.record({ op: kind, inputs: [x.id], shape: [s[0], oh, ow], params: [], attrs: { kh, kw, sh, sw, ph, pw } });
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return pool('maxpool2d', x, this.kernelSize, this.options);
  }
}

export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly options: PoolOptions = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return pool('avgpool2d', x, this.kernelSize, this.options);
  }
}

export class BatchNorm2d extends Module {
  declare weight: Parameter;
  declare bias: Parameter;
  readonly eps: number;
  readonly momentum: number;

  constructor(
    readonly numFeatures: number,
    options: { eps?: number; momentum?: number } = {},
  ) {
    super();
    checkOptions(`BatchNorm2d(${numFeatures})`, options, { eps: any, momentum: any });
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    const n = numFeatures;
    // Registered by name so the state_dict keys are PyTorch's snake_case ones.
    const weight = new Parameter(new Float32Array(n).fill(1), [n]);
    const bias = new Parameter(new Float32Array(n), [n]);
    this.register('weight', weight);
    this.register('bias', bias);
    this.register('running_mean', new Buffer(new Float32Array(n), [n], 'F32'));
    this.register('running_var', new Buffer(new Float32Array(n).fill(1), [n], 'F32'));
    this.register('num_batches_tracked', new Buffer(new BigInt64Array(1), [], 'I64'));
    Object.defineProperty(this, 'weight', { value: weight, enumerable: false });
    Object.defineProperty(this, 'bias', { value: bias, enumerable: false });
  }

  forward(x: Tensor): Tensor {
    const t = currentTracer();
    const op = `BatchNorm2d(${this.numFeatures})`;
    const s = x.sampleShape;
    if (s.length !== 3) t.fail(op, `expects an input [B, C, H, W], got ${showShape(s)}`);
    if (s[0] !== this.numFeatures) t.fail(op, `expects ${this.numFeatures} channels, got ${showShape(s)}`, `use BatchNorm2d(${s[0]})`);
    const name = t.nameOf(this);
    return t.record({
      op: 'batchnorm2d',
      inputs: [x.id],
      shape: [...s],
      params: ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `${name}.${k}`),
      attrs: { C: this.numFeatures, eps: this.eps, momentum: this.momentum },
    });
  }
}

export function dropout(x: Tensor, p: number, channelwise: boolean): Tensor {
  const t = currentTracer();
  const op = channelwise ? `Dropout2d(p=${p})` : `Dropout(p=${p})`;
  if (!(p >= 0 && p < 1)) t.fail(op, `p must be in [0, 1), got ${p}`);
  if (channelwise && x.sampleShape.length !== 3) t.fail(op, `expects an input [B, C, H, W], got ${showShape(x.sampleShape)}`);
  return t.record({
    op: 'dropout',
    inputs: [x.id],
    shape: [...x.sampleShape],
    params: [],
    attrs: { p, channelwise, stream: t.nextStream() },
  });
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, false);
  }
}

export class Dropout2d extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, true);
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return x.flatten(1);
  }
}

export { fanIn };
