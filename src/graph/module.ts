// nn.Module as in PyTorch: submodules and parameters are discovered from the
// instance's fields in definition order, and their field names become
// state_dict keys. Instances are callable (`this.conv1(x)`), like Python's.
import type { Dtype, HostTensor } from './ir.js';
import { callerSource } from './source.js';
import { currentTracer } from './tracer.js';
import type { Tensor } from './tensor.js';

/** A trainable tensor (float32). */
export class Parameter {
  constructor(
    public data: Float32Array,
    readonly shape: number[],
  ) {}
}

/** A non-trainable state tensor (BatchNorm's running statistics and counter). */
export class Buffer {
  constructor(
    public data: Float32Array | BigInt64Array,
    readonly shape: number[],
    readonly dtype: Dtype,
  ) {}
}

export type StateEntry = Parameter | Buffer;

// Makes `new Net()(x)` work: the instance is a function whose prototype is the class's.
export interface Module {
  (...inputs: Tensor[]): Tensor;
}

export abstract class Module {
  constructor() {
    const self = ((...inputs: Tensor[]) => self.call(...inputs)) as unknown as Module;
    // Drop the function's own props so field order equals definition order.
    delete (self as { name?: unknown }).name;
    delete (self as { length?: unknown }).length;
    Object.setPrototypeOf(self, new.target.prototype);
    Object.defineProperty(self, '_training', { value: true, writable: true, enumerable: false });
    Object.defineProperty(self, '_named', { value: new Map<string, StateEntry>(), enumerable: false });
    Object.defineProperty(self, '_source', { value: callerSource(), enumerable: false });
    return self;
  }

  abstract forward(...inputs: Tensor[]): Tensor;

  /** Runs forward inside this module's scope, so recorded ops know where they came from. */
  call(...inputs: Tensor[]): Tensor {
    return this.callIn(undefined, inputs);
  }

  /**
   * As call(), for library code that runs a child (Sequential): ops the child
   * records report the line where the child was constructed, not the line of
   * the Sequential's call, which is the same for all its layers.
   */
  callAsChild(...inputs: Tensor[]): Tensor {
    return this.callIn((this as unknown as { _source: string })._source, inputs);
  }

  private callIn(defLine: string | undefined, inputs: Tensor[]): Tensor {
    const tracer = currentTracer();
    if (typeof this.forward !== 'function') tracer.fail(this.constructor.name, 'has no forward method');
    tracer.enter(this, defLine);
    let out: Tensor | undefined;
    try {
      if (typeof this.forward !== 'function')
        throw new Error(`${this.constructor.name} has no forward(x) method: an nn.Module must define one`);
      out = this.forward(...inputs);
      return out;
    } finally {
      tracer.exit(out);
    }
  }

  /** State registered under an explicit name (e.g. BatchNorm's `running_mean`). */
  protected register(name: string, entry: StateEntry): void {
    (this as unknown as { _named: Map<string, StateEntry> })._named.set(name, entry);
  }

  /** Own parameters and buffers, then none of the children's: PyTorch's `_parameters` + `_buffers`. */
  ownState(): [string, StateEntry][] {
    const out: [string, StateEntry][] = [...(this as unknown as { _named: Map<string, StateEntry> })._named];
    for (const [k, v] of Object.entries(this)) if (v instanceof Parameter || v instanceof Buffer) out.push([k, v]);
    // PyTorch lists a module's parameters before its buffers.
    return [...out.filter((e) => e[1] instanceof Parameter), ...out.filter((e) => e[1] instanceof Buffer)];
  }

  children(): [string, Module][] {
    return Object.entries(this).filter((e): e is [string, Module] => e[1] instanceof Module);
  }

  /** Every (name, module) in PyTorch's order, a shared instance once under its first name. */
  namedModules(prefix = '', seen = new Set<Module>()): [string, Module][] {
    if (seen.has(this)) return [];
    seen.add(this);
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.children()) out.push(...m.namedModules(join(prefix, k), seen));
    return out;
  }

  /** Parameters in PyTorch's order (own first, then children), shared ones once. */
  namedParameters(): [string, Parameter][] {
    return this.namedState().filter((e): e is [string, Parameter] => e[1] instanceof Parameter);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map((e) => e[1]);
  }

  /** Parameters and buffers, de-duplicated, in state_dict order. */
  namedState(): [string, StateEntry][] {
    const seen = new Set<StateEntry>();
    return this.stateKeys().filter(([, e]) => (seen.has(e) ? false : (seen.add(e), true)));
  }

  /** Every state_dict key, shared modules repeated under each of their names, as PyTorch's state_dict(). */
  stateKeys(prefix = ''): [string, StateEntry][] {
    const out: [string, StateEntry][] = this.ownState().map(([k, e]) => [join(prefix, k), e]);
    for (const [k, m] of this.children()) out.push(...m.stateKeys(join(prefix, k)));
    return out;
  }

  /** A copy of every state tensor under PyTorch's names. */
  stateDict(): Map<string, HostTensor> {
    return new Map(this.stateKeys().map(([k, e]) => [k, toHost(e)]));
  }

  /**
   * Loads tensors by name. Strict: missing and unexpected keys, shape and dtype
   * mismatches are all listed in one error, and nothing is changed on error.
   */
  loadStateDict(state: Map<string, HostTensor> | Record<string, HostTensor>): void {
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const keys = this.stateKeys();
    const problems: string[] = [];
    const expected = new Set(keys.map(([k]) => k));
    for (const [k, e] of keys) {
      const t = given.get(k);
      if (!t) problems.push(`missing key '${k}'`);
      else if (t.shape.join() !== e.shape.join()) problems.push(`'${k}': shape [${t.shape}] in the file, [${e.shape}] in the model`);
      else if (t.dtype !== dtypeOf(e)) problems.push(`'${k}': dtype ${t.dtype} in the file, ${dtypeOf(e)} in the model`);
    }
    for (const k of given.keys()) if (!expected.has(k)) problems.push(`unexpected key '${k}'`);
    if (problems.length) throw new Error(`loadStateDict: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    for (const [k, e] of keys) e.data.set(given.get(k)!.data as never);
  }

  get training(): boolean {
    return (this as unknown as { _training: boolean })._training;
  }

  /** Sets train mode here and in every submodule, as PyTorch's train(). */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) (m as unknown as { _training: boolean })._training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }
}

/** Modules held by index ('0', '1', ...), which become their state_dict prefixes. */
abstract class IndexedModules extends Module {
  constructor(modules: Module[]) {
    super();
    modules.forEach((m, i) => Object.defineProperty(this, String(i), { value: m, enumerable: true }));
  }

  override get length(): number {
    return this.children().length;
  }

  at(i: number): Module {
    return this.children()[i][1];
  }

  [Symbol.iterator](): Iterator<Module> {
    const modules = this.children().map((e) => e[1]);
    return modules[Symbol.iterator]();
  }
}

/** Applies modules in order; `new Sequential(...Array(n).fill(block))` shares one block n times. */
export class Sequential extends IndexedModules {
  constructor(...modules: Module[]) {
    super(modules);
  }

  forward(x: Tensor): Tensor {
    for (const m of this) x = m.callAsChild(x);
    return x;
  }
}

/** Holds modules by index; forward is the user's business, as in PyTorch. */
export class ModuleList extends IndexedModules {
  constructor(modules: Module[] = []) {
    super(modules);
  }

  forward(): Tensor {
    throw new Error('ModuleList has no forward: iterate over it in your own forward');
  }
}

function join(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

function dtypeOf(e: StateEntry): Dtype {
  return e instanceof Buffer ? e.dtype : 'F32';
}

function toHost(e: StateEntry): HostTensor {
  return { dtype: dtypeOf(e), shape: [...e.shape], data: e.data.slice() };
}
