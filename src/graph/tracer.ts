// Records ops into a graph while a model's forward runs on symbolic tensors.
import { ModelError, showShape } from './errors.js';
import { numel, type Node } from './ir.js';
import { callerSource } from './source.js';
import { Tensor } from './tensor.js';

type NewNode = Node extends infer N ? (N extends Node ? Omit<N, 'id' | 'module' | 'source'> : never) : never;

export class Tracer {
  readonly nodes: Node[] = [];
  private readonly scope: string[] = [];
  private streams = 0;

  constructor(private readonly moduleNames: Map<object, string>) {}

  /** Path of the module whose forward is running ('' for the root). */
  get module(): string {
    return this.scope.length ? this.scope[this.scope.length - 1] : '';
  }

  nameOf(module: object): string {
    return this.moduleNames.get(module) ?? '';
  }

  enter(module: object): void {
    this.scope.push(this.nameOf(module));
  }

  exit(): void {
    this.scope.pop();
  }

  /** A fresh stream number for a dropout node's random mask. */
  nextStream(): number {
    return this.streams++;
  }

  record(node: NewNode): Tensor {
    const full = { ...node, id: this.nodes.length, module: this.module, source: callerSource() } as Node;
    this.nodes.push(full);
    return new Tensor(full.id, full.shape);
  }

  fail(op: string, problem: string, hint?: string): never {
    throw new ModelError(this.module, op, callerSource(), problem, hint);
  }

  view(x: Tensor, dims: number[]): Tensor {
    const n = x.numel();
    const call = `view(${dims.join(', ')})`;
    if (dims.length < 2 || dims[0] !== -1) this.fail(call, `the batch must stay the first dimension: write view(-1, ...)`);
    const rest = dims.slice(1);
    const free = rest.filter((d) => d === -1).length;
    if (free > 1 || rest.some((d) => d !== -1 && (!Number.isInteger(d) || d < 1)))
      this.fail(call, `sizes after the batch must be positive integers, with at most one -1`);
    const known = numel(rest.filter((d) => d !== -1));
    if (free === 1 && n % known !== 0)
      this.fail(call, `cannot split ${n} values per sample of ${showShape(x.sampleShape)} into ${showShape(rest)}`);
    const shape = rest.map((d) => (d === -1 ? n / known : d));
    if (numel(shape) !== n)
      this.fail(
        call,
        `the input ${showShape(x.sampleShape)} has ${n} values per sample, not ${numel(shape)}`,
        `view(-1, ${n}) flattens it; if you expected ${numel(shape)}, check the pooling and channel counts before this line`,
      );
    return this.record({ op: 'reshape', inputs: [x.id], shape, params: [] });
  }

  flatten(x: Tensor, startDim: number): Tensor {
    if (startDim !== 1) this.fail(`flatten(${startDim})`, 'only flatten(1) is supported: the batch stays the first dimension');
    return this.record({ op: 'reshape', inputs: [x.id], shape: [x.numel()], params: [] });
  }

  unary(op: 'relu' | 'tanh', x: Tensor): Tensor {
    return this.record({ op, inputs: [x.id], shape: [...x.sampleShape], params: [] });
  }

  binary(op: 'add', a: Tensor, b: Tensor): Tensor {
    if (!(b instanceof Tensor)) this.fail(op, `expected a tensor to add, got ${typeof b}`);
    if (a.sampleShape.join() !== b.sampleShape.join())
      this.fail(op, `cannot add ${showShape(a.sampleShape)} and ${showShape(b.sampleShape)}: shapes must match (no broadcasting)`);
    return this.record({ op, inputs: [a.id, b.id], shape: [...a.sampleShape], params: [] });
  }
}

let active: Tracer | null = null;

export function currentTracer(): Tracer {
  if (!active) throw new Error('tensor ops run only while tracing: call trace(model) or gen build, not forward() directly');
  return active;
}

export function isTracing(): boolean {
  return active !== null;
}

export function withTracer<T>(tracer: Tracer, fn: () => T): T {
  if (active) throw new Error('trace() is not re-entrant');
  active = tracer;
  try {
    return fn();
  } finally {
    active = null;
  }
}
