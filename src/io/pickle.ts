// A restricted unpickler: it builds plain data (numbers, strings, lists,
// tuples, dicts) and runs nothing. Every GLOBAL goes through the caller's
// `findGlobal`, which decides what a name means or refuses it; the only
// "calls" are REDUCE/NEWOBJ on what `findGlobal` returned. Opcodes of
// protocols 2 to 5 (and the simple protocol-0 ones) are understood.
// Bounded: the machine is a loop (no recursion, however deep the data nest),
// integers parse in linear time up to MAX_PICKLE_INT_BYTES, and dict keys are
// hashed as Python would (tuples of hashables, nested at most MAX_NESTING deep).

import { MAX_NESTING, MAX_PICKLE_INT_BYTES } from './limits.js';

/** A Python tuple (kept apart from lists so that callers can tell them apart). */
export class PyTuple {
  constructor(readonly items: unknown[]) {}
}

/** A Python dict or OrderedDict, in insertion order. `state` is what BUILD set on it. */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  state: unknown = undefined;
  constructor(readonly className = 'dict') {}
}

/** What a GLOBAL resolved to: something REDUCE may call, or a marker (e.g. a storage type). */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly call?: (args: unknown[]) => unknown,
  ) {}

  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface UnpickleOptions {
  source: string;
  /** Resolve a GLOBAL or throw (a restricted unpickler throws for anything it does not know). */
  findGlobal(module: string, name: string): PyGlobal;
  /** Turn a persistent id (BINPERSID) into a value; without it such ids are an error. */
  persistentLoad?(pid: unknown): unknown;
}

export interface Unpickled {
  value: unknown;
  /** Byte just past the STOP opcode: where a following pickle starts. */
  end: number;
}

/** Python-ish name of a value's type, for error messages. */
export function pyTypeName(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'string') return 'str';
  if (v instanceof Uint8Array) return 'bytes';
  if (Array.isArray(v)) return 'list';
  if (v instanceof PyTuple) return 'tuple';
  if (v instanceof PyDict) return v.className;
  if (v instanceof PyGlobal) return v.qualname;
  if (v instanceof Set) return 'set';
  return (v as object).constructor?.name ?? 'object';
}

class Machine {
  pos: number;
  stack: unknown[] = [];
  marks: unknown[][] = [];
  memo = new Map<number, unknown>();
  view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly opts: UnpickleOptions,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(what: string, at = this.pos): never {
    throw new Error(`${this.opts.source}: bad pickle at byte ${at}: ${what}`);
  }

  take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.bytes.length) this.fail('data ends early (truncated file?)');
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u8(): number {
    return this.take(1)[0];
  }

  int(n: 1 | 2 | 4, signed = false): number {
    const at = this.take(n).byteOffset - this.bytes.byteOffset;
    if (n === 1) return this.view.getUint8(at);
    if (n === 2) return this.view.getUint16(at, true);
    return signed ? this.view.getInt32(at, true) : this.view.getUint32(at, true);
  }

  u64(): number {
    const at = this.take(8).byteOffset - this.bytes.byteOffset;
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(this.bytes.length)) this.fail(`length ${v} is larger than the file`);
    return Number(v);
  }

  line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('text line without an end (truncated file?)');
    const s = latin1(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  utf8(n: number): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n));
    } catch (e) {
      if (e instanceof TypeError) this.fail('string is not valid UTF-8');
      throw e;
    }
  }

  push(v: unknown): void {
    this.stack.push(v);
  }

  pop(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack.pop();
  }

  top(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }

  mark(): void {
    this.marks.push(this.stack);
    this.stack = [];
  }

  popMark(): unknown[] {
    const items = this.stack;
    const prev = this.marks.pop();
    if (prev === undefined) this.fail('MARK missing');
    this.stack = prev;
    return items;
  }

  get(key: number): unknown {
    if (!this.memo.has(key)) this.fail(`memo key ${key} was never stored`);
    return this.memo.get(key);
  }

  global(module: string, name: string): void {
    this.push(this.opts.findGlobal(module, name));
  }

  call(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof PyGlobal) || fn.call === undefined) this.fail(`cannot call ${pyTypeName(fn)}`);
    if (!(args instanceof PyTuple)) this.fail(`arguments of ${fn.qualname} are a ${pyTypeName(args)}, not a tuple`);
    return fn.call(args.items);
  }

  setItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof PyDict)) this.fail(`SETITEM on a ${pyTypeName(target)}`);
    if (items.length % 2 !== 0) this.fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) target.map.set(this.key(items[i]), items[i + 1]);
  }

  /** A dict key or set item: what dictKey makes of it, or this pickle's error. */
  key(k: unknown): unknown {
    const r = dictKey(k);
    if (r instanceof KeyError) this.fail(r.message);
    return r;
  }

  append(target: unknown, items: unknown[]): void {
    if (!Array.isArray(target)) this.fail(`APPEND on a ${pyTypeName(target)}`);
    // one push per item: push(...items) overflows the call stack for long lists
    for (const v of items) target.push(v);
  }

  /** A little-endian two's-complement integer of `n` bytes (LONG1, LONG4). */
  long(n: number): number | bigint {
    if (n > MAX_PICKLE_INT_BYTES) this.fail(`integer of ${n} bytes is over the ${MAX_PICKLE_INT_BYTES}-byte limit`);
    return longFromBytes(this.take(n));
  }

  /** A protocol-0 integer line ("123", "-4L"). */
  intLine(s: string): number | bigint {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[-+]?\d+$/.test(t)) this.fail(`bad integer '${clip(s)}'`);
    if (t.length > MAX_PICKLE_INT_BYTES) this.fail(`integer of ${t.length} digits is over the ${MAX_PICKLE_INT_BYTES}-digit limit`);
    return smallest(BigInt(t));
  }

  build(target: unknown, state: unknown): void {
    // Only dicts take state (an OrderedDict state_dict carries `_metadata`);
    // anything else would need a __setstate__, which we never run.
    if (!(target instanceof PyDict)) this.fail(`BUILD on a ${pyTypeName(target)}`);
    target.state = state;
  }

  persistent(pid: unknown): unknown {
    if (!this.opts.persistentLoad) this.fail('persistent id in a pickle that allows none');
    return this.opts.persistentLoad(pid);
  }
}

class KeyError {
  constructor(readonly message: string) {}
}

/**
 * Dict keys: primitives by value; tuples (of hashables, as Python requires)
 * by a text that equal tuples share. Built without recursion, so a deep or
 * self-containing key is an error, not a stack overflow.
 */
function dictKey(k: unknown): unknown {
  if (!(k instanceof PyTuple)) return hashable(k) ? k : new KeyError(`unhashable type '${pyTypeName(k)}' as a dict key`);
  const parts: string[] = [];
  const todo: unknown[] = [k];
  const depth: number[] = [1];
  while (todo.length) {
    const v = todo.pop();
    const d = depth.pop()!;
    if (v === CLOSE) parts.push(')');
    else if (v instanceof PyTuple) {
      if (d > MAX_NESTING) return new KeyError(`dict key nests tuples more than ${MAX_NESTING} deep`);
      parts.push('(');
      todo.push(CLOSE);
      depth.push(d);
      for (let i = v.items.length - 1; i >= 0; i--) {
        todo.push(v.items[i]);
        depth.push(d + 1);
      }
    } else if (hashable(v)) parts.push(`${typeof v}:${String(v)},`);
    else return new KeyError(`unhashable type '${pyTypeName(v)}' in a dict key`);
  }
  return parts.join('');
}

const CLOSE = Symbol('end of tuple');

function hashable(v: unknown): boolean {
  return v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v) || v instanceof PyGlobal;
}

/** At most 40 characters of a text from the file, for a message. */
function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** Linear in the length: one hex string, one BigInt (a shift per byte would be quadratic). */
function longFromBytes(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = BigInt('0x' + Buffer.from(b).reverse().toString('hex'));
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return smallest(v);
}

function smallest(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Run one opcode; returns false at STOP. */
function step(m: Machine, op: number): boolean {
  switch (op) {
    case 0x2e: // STOP
      return false;
    case 0x80: {
      // PROTO
      const proto = m.u8();
      if (proto > 5) m.fail(`pickle protocol ${proto} is not supported (at most 5)`);
      break;
    }
    case 0x95: // FRAME: a length prefix only
      m.take(8);
      break;
    case 0x28:
      m.mark();
      break; // MARK
    case 0x30:
      m.pop();
      break; // POP
    case 0x31:
      m.popMark();
      break; // POP_MARK
    case 0x32:
      m.push(m.top());
      break; // DUP
    case 0x4e:
      m.push(null);
      break; // NONE
    case 0x88:
      m.push(true);
      break; // NEWTRUE
    case 0x89:
      m.push(false);
      break; // NEWFALSE
    case 0x4b:
      m.push(m.int(1));
      break; // BININT1
    case 0x4d:
      m.push(m.int(2));
      break; // BININT2
    case 0x4a:
      m.push(m.int(4, true));
      break; // BININT
    case 0x8a:
      m.push(m.long(m.u8()));
      break; // LONG1
    case 0x8b:
      m.push(m.long(m.int(4)));
      break; // LONG4
    case 0x49: {
      // INT (text); "I01"/"I00" are True/False
      const s = m.line();
      m.push(s === '01' ? true : s === '00' ? false : m.intLine(s));
      break;
    }
    case 0x4c:
      m.push(m.intLine(m.line()));
      break; // LONG (text)
    case 0x46: {
      // FLOAT (text)
      const s = m.line();
      const v = Number(s);
      if (Number.isNaN(v) && !/^[-+]?nan$/i.test(s)) m.fail(`bad float '${clip(s)}'`);
      m.push(v);
      break;
    }
    case 0x47: {
      // BINFLOAT: big-endian double
      const b = m.take(8);
      m.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false));
      break;
    }
    case 0x58:
      m.push(m.utf8(m.int(4)));
      break; // BINUNICODE
    case 0x8c:
      m.push(m.utf8(m.u8()));
      break; // SHORT_BINUNICODE
    case 0x8d:
      m.push(m.utf8(m.u64()));
      break; // BINUNICODE8
    case 0x55:
      m.push(latin1(m.take(m.u8())));
      break; // SHORT_BINSTRING
    case 0x54:
      m.push(latin1(m.take(m.int(4))));
      break; // BINSTRING
    case 0x43:
      m.push(new Uint8Array(m.take(m.u8())));
      break; // SHORT_BINBYTES
    case 0x42:
      m.push(new Uint8Array(m.take(m.int(4))));
      break; // BINBYTES
    case 0x8e:
      m.push(new Uint8Array(m.take(m.u64())));
      break; // BINBYTES8
    case 0x96:
      m.push(new Uint8Array(m.take(m.u64())));
      break; // BYTEARRAY8
    case 0x29:
      m.push(new PyTuple([]));
      break; // EMPTY_TUPLE
    case 0x85:
      m.push(new PyTuple([m.pop()]));
      break; // TUPLE1
    case 0x86: {
      // TUPLE2
      const b = m.pop();
      m.push(new PyTuple([m.pop(), b]));
      break;
    }
    case 0x87: {
      // TUPLE3
      const c = m.pop();
      const b = m.pop();
      m.push(new PyTuple([m.pop(), b, c]));
      break;
    }
    case 0x74:
      m.push(new PyTuple(m.popMark()));
      break; // TUPLE
    case 0x5d:
      m.push([]);
      break; // EMPTY_LIST
    case 0x6c:
      m.push(m.popMark());
      break; // LIST
    case 0x61: {
      // APPEND
      const v = m.pop();
      m.append(m.top(), [v]);
      break;
    }
    case 0x65: {
      // APPENDS
      const items = m.popMark();
      m.append(m.top(), items);
      break;
    }
    case 0x7d:
      m.push(new PyDict());
      break; // EMPTY_DICT
    case 0x64: {
      // DICT
      const d = new PyDict();
      m.setItems(d, m.popMark());
      m.push(d);
      break;
    }
    case 0x73: {
      // SETITEM
      const v = m.pop();
      const k = m.pop();
      m.setItems(m.top(), [k, v]);
      break;
    }
    case 0x75: {
      // SETITEMS
      const items = m.popMark();
      m.setItems(m.top(), items);
      break;
    }
    case 0x8f:
      m.push(new Set());
      break; // EMPTY_SET
    case 0x90: {
      // ADDITEMS
      const items = m.popMark();
      const s = m.top();
      if (!(s instanceof Set)) m.fail(`ADDITEMS on a ${pyTypeName(s)}`);
      for (const v of items) s.add(m.key(v));
      break;
    }
    case 0x91:
      m.push(new Set(m.popMark().map((v) => m.key(v))));
      break; // FROZENSET
    case 0x71:
      m.memo.set(m.u8(), m.top());
      break; // BINPUT
    case 0x72:
      m.memo.set(m.int(4), m.top());
      break; // LONG_BINPUT
    case 0x70:
      m.memo.set(Number(m.line()), m.top());
      break; // PUT
    case 0x94:
      m.memo.set(m.memo.size, m.top());
      break; // MEMOIZE
    case 0x68:
      m.push(m.get(m.u8()));
      break; // BINGET
    case 0x6a:
      m.push(m.get(m.int(4)));
      break; // LONG_BINGET
    case 0x67:
      m.push(m.get(Number(m.line())));
      break; // GET
    case 0x63: {
      // GLOBAL "module\nname\n"
      const module = m.line();
      m.global(module, m.line());
      break;
    }
    case 0x93: {
      // STACK_GLOBAL
      const name = m.pop();
      const module = m.pop();
      if (typeof module !== 'string' || typeof name !== 'string') m.fail('STACK_GLOBAL needs two strings');
      m.global(module, name);
      break;
    }
    case 0x52: // REDUCE
    case 0x81: {
      // NEWOBJ: cls.__new__(cls, *args), treated as a call of an allowed global
      const args = m.pop();
      const fn = m.pop();
      m.push(m.call(fn, args));
      break;
    }
    case 0x62: {
      // BUILD
      const state = m.pop();
      m.build(m.top(), state);
      break;
    }
    case 0x51:
      m.push(m.persistent(m.pop()));
      break; // BINPERSID
    case 0x50:
      m.push(m.persistent(m.line()));
      break; // PERSID
    default:
      // INST, OBJ, EXT*, NEWOBJ_EX, out-of-band buffers, protocol-0 strings.
      m.fail(`unsupported opcode 0x${op.toString(16).padStart(2, '0')}`, m.pos - 1);
  }
  return true;
}

/** Unpickle the pickle that starts at `start`; later bytes are left alone. */
export function unpickle(bytes: Uint8Array, start: number, opts: UnpickleOptions): Unpickled {
  const m = new Machine(bytes, start, opts);
  for (;;) {
    if (m.pos >= bytes.length) m.fail('pickle ends without STOP (truncated file?)');
    if (!step(m, m.u8())) break;
  }
  if (m.marks.length !== 0 || m.stack.length !== 1) m.fail('malformed pickle: stack not balanced at STOP');
  return { value: m.stack[0], end: m.pos };
}
