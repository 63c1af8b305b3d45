// Records ops into a graph while a model's forward runs on symbolic tensors.
// The op-specific tracing (shape rules, checks) lives in src/ops/<op>.ts.
import { ModelError } from './errors.js';
import type { ModuleCall, Node } from './ir.js';
import { callerSource } from './source.js';
import { Tensor } from './tensor.js';

type NewNode = Node extends infer N ? (N extends Node ? Omit<N, 'id' | 'module' | 'source'> : never) : never;

interface Scope {
  module: string;
  /** the module object, and the path it was called under (a shared module's n-th call by its parent takes its n-th name there) */
  self: object;
  path: string;
  /** calls this scope made to each child so far */
  calls: Map<object, number>;
  /** the first node recorded inside the call */
  first: number;
  /** for a module called by library code (a Sequential): the user line of that call, and where the module was built */
  callLine?: string;
  defLine?: string;
}

export class Tracer {
  readonly nodes: Node[] = [];
  /** every module call but the root's, in order of return: the path it was called under and the value it returned */
  readonly calls: ModuleCall[] = [];
  private readonly scope: Scope[] = [];
  private streams = 0;

  constructor(private readonly moduleNames: Map<object, string>) {}

  /** Path of the module whose forward is running ('' for the root). */
  get module(): string {
    return this.scope.length ? this.scope[this.scope.length - 1].module : '';
  }

  nameOf(module: object): string {
    return this.moduleNames.get(module) ?? '';
  }

  /** `defLine`: where a module called by library code was constructed (ops it records report that line). */
  enter(module: object, defLine?: string): void {
    const s: Scope = { module: this.nameOf(module), self: module, path: this.callPath(module), calls: new Map(), first: this.nodes.length };
    this.scope.push(defLine ? { ...s, callLine: callerSource(), defLine } : s);
  }

  /** Leaves the module's scope; `output`: the value its forward returned. */
  exit(output?: { id: number }): void {
    const s = this.scope.pop();
    if (s && this.scope.length > 0 && output)
      this.calls.push({ path: s.path, module: s.module, type: s.self.constructor.name, first: s.first, output: output.id });
  }

  /**
   * The path a module is called under: its field name in the calling module
   * (the k-th call of a module held under several names takes the k-th, as
   * Sequential(block, block, …) calls 'resblocks.0', 'resblocks.1', …),
   * else its state_dict name.
   */
  private callPath(module: object): string {
    const parent = this.scope[this.scope.length - 1];
    if (!parent) return this.nameOf(module);
    const names = Object.entries(parent.self)
      .filter((e) => e[1] === module)
      .map((e) => e[0]);
    if (!names.length) return this.nameOf(module);
    const k = parent.calls.get(module) ?? 0;
    parent.calls.set(module, k + 1);
    const name = names[k % names.length];
    return parent.path ? `${parent.path}.${name}` : name;
  }

  /** Where the op being recorded was written: the innermost user line, or the layer's own line inside a Sequential. */
  source(): string {
    const src = callerSource();
    for (let i = this.scope.length - 1; i >= 0; i--) {
      const s = this.scope[i];
      if (s.defLine && s.callLine === src) return s.defLine;
    }
    return src;
  }

  /** A fresh stream number for a dropout node's random mask. */
  nextStream(): number {
    return this.streams++;
  }

  record(node: NewNode): Tensor {
    const full = { ...node, id: this.nodes.length, module: this.module, source: this.source() } as Node;
    this.nodes.push(full);
    return new Tensor(full.id, full.shape);
  }

  /** Stops the trace with an error naming the module, the op and the model.ts line. */
  fail(op: string, problem: string, hint?: string): never {
    throw new ModelError(this.module, op, this.source(), problem, hint);
  }

  /** The shape of value `id`. */
  shapeOf(id: number): number[] {
    return this.nodes[id].shape;
  }
}

let active: Tracer | null = null;
// Set while any copy of tensorkiln in the process traces: a model built on another copy then gets a message that names it.
const tracingKey = Symbol.for('tensorkiln.tracing');
const shared = globalThis as Record<symbol, number | undefined>;

export function currentTracer(): Tracer {
  if (active) return active;
  if (shared[tracingKey])
    throw new Error(
      'this model\'s tensorkiln is another copy than the one tracing it: under tsx, a CommonJS model file (.cts, or .ts in a package without "type": "module") imported by an ES module before that module imports tensorkiln gets a copy of its own; import \'tensorkiln\' first, or name the model file .mts',
    );
  throw new Error('tensor ops run only while tracing: call trace(model) or gen build, not forward() directly');
}

export function isTracing(): boolean {
  return active !== null;
}

export function withTracer<T>(tracer: Tracer, fn: () => T): T {
  if (active) throw new Error('trace() is not re-entrant');
  active = tracer;
  shared[tracingKey] = (shared[tracingKey] ?? 0) + 1;
  try {
    return fn();
  } finally {
    active = null;
    shared[tracingKey]! -= 1;
  }
}
