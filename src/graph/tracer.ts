// Records ops into a graph while a model's forward runs on symbolic tensors.
// The op-specific tracing (shape rules, checks) lives in src/ops/<op>.ts.
import { ModelError } from './errors.js';
import type { Node } from './ir.js';
import { callerSource } from './source.js';
import { Tensor } from './tensor.js';

type NewNode = Node extends infer N ? (N extends Node ? Omit<N, 'id' | 'module' | 'source'> : never) : never;

interface Scope {
  module: string;
  /** for a module called by library code (a Sequential): the user line of that call, and where the module was built */
  callLine?: string;
  defLine?: string;
}

export class Tracer {
  readonly nodes: Node[] = [];
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
    this.scope.push(defLine ? { module: this.nameOf(module), callLine: callerSource(), defLine } : { module: this.nameOf(module) });
  }

  exit(): void {
    this.scope.pop();
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
