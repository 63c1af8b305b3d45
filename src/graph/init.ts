// Weight initialisation as PyTorch does it, from one seeded generator.
import { Rng } from '../util/rng.js';
import type { Parameter } from './module.js';

let rng = new Rng(0);

/** Like torch.manual_seed: reseeds every later initialisation. */
export function manualSeed(seed: number): void {
  rng = new Rng(seed);
}

export function globalRng(): Rng {
  return rng;
}

/** fan_in of a [out, in, ...kernel] weight. */
export function fanIn(shape: number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

export function uniform_(p: Parameter, lo: number, hi: number): Parameter {
  for (let i = 0; i < p.data.length; i++) p.data[i] = rng.uniformIn(lo, hi);
  return p;
}

export function normal_(p: Parameter, mean = 0, std = 1): Parameter {
  for (let i = 0; i < p.data.length; i++) p.data[i] = mean + std * rng.normal();
  return p;
}

export function constant_(p: Parameter, value: number): Parameter {
  p.data.fill(value);
  return p;
}

export function zeros_(p: Parameter): Parameter {
  return constant_(p, 0);
}

export function ones_(p: Parameter): Parameter {
  return constant_(p, 1);
}

export type Nonlinearity = 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu';

/** torch.nn.init.calculate_gain */
export function calculateGain(nonlinearity: Nonlinearity, param?: number): number {
  switch (nonlinearity) {
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const a = param ?? 0.01;
      return Math.sqrt(2 / (1 + a * a));
    }
    case 'linear':
    case 'conv2d':
    case 'sigmoid':
      return 1;
  }
}

export interface KaimingOptions {
  a?: number;
  mode?: 'fan_in' | 'fan_out';
  nonlinearity?: Nonlinearity;
}

function kaimingStd(p: Parameter, o: KaimingOptions): number {
  const fan = o.mode === 'fan_out' ? (p.shape[0] * fanIn(p.shape)) / (p.shape[1] ?? 1) : fanIn(p.shape);
  return calculateGain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

/** nn.init.kaiming_uniform_: U(±gain·√(3/fan)). */
export function kaimingUniform_(p: Parameter, o: KaimingOptions = {}): Parameter {
  const bound = Math.sqrt(3) * kaimingStd(p, o);
  return uniform_(p, -bound, bound);
}

/** nn.init.kaiming_normal_: N(0, gain/√fan). */
export function kaimingNormal_(p: Parameter, o: KaimingOptions = {}): Parameter {
  return normal_(p, 0, kaimingStd(p, o));
}

/** PyTorch's default for Conv and Linear: weight kaiming_uniform_(a=√5), bias U(±1/√fan_in). */
export function defaultInit(weight: Parameter, bias: Parameter | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const bound = 1 / Math.sqrt(fanIn(weight.shape));
    uniform_(bias, -bound, bound);
  }
}

export const init = { uniform_, normal_, constant_, zeros_, ones_, kaimingUniform_, kaimingNormal_, calculateGain };
