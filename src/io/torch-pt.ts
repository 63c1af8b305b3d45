// Read a PyTorch state_dict saved with torch.save, in the zip format (the
// default since PyTorch 1.6) or the legacy one (_use_new_zipfile_serialization
// =False). The pickles go through a restricted unpickler that knows only
// dicts, tensors and storages: a file cannot run code, whatever it holds.
// Memory stays proportional to the file: each storage is read once, and a
// contiguous tensor is a view of it (tied weights share it, as in PyTorch);
// storages and tensors are each capped at MAX_TENSOR_BYTES in all.
//
// zip:    <prefix>/data.pkl, <prefix>/data/<key> (raw storage bytes),
//         optional <prefix>/byteorder ("little" | "big")
// legacy: pickles of magic number, protocol version, sys_info, the data,
//         the storage keys; then per key a u64 element count and the bytes.

import { PyDict, PyGlobal, PyTuple, pyTypeName, unpickle } from './pickle.js';
import { allocData, numel, type Dtype, type Tensor, type TensorData } from './safetensors.js';
import { readRegularFile } from '../util/fs.js';
import { formatBytes, MAX_NESTING, MAX_TENSOR_BYTES, MAX_WEIGHTS_FILE_BYTES } from './limits.js';
import { isZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip.js';

/** How storages are stored; F16 and BF16 are widened to F32 on reading. */
type StorageDtype = Dtype | 'F16' | 'BF16';

const STORAGE_TYPES: Record<string, StorageDtype> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ByteStorage: 'U8',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
};

const STORAGE_ITEM_SIZE: Record<StorageDtype, number> = { F32: 4, F64: 8, I64: 8, I32: 4, U8: 1, F16: 2, BF16: 2 };

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

export interface TorchPtOptions {
  /** What to do with values that are not tensors or dicts (e.g. `epoch` in a checkpoint). */
  nonTensors?: 'error' | 'skip';
  /** Bytes of storage read, and of tensors returned, each at most this (default MAX_TENSOR_BYTES, 1 GiB). */
  maxBytes?: number;
}

/** A running total that must stay under a limit; `what` names it in the error. */
class Budget {
  used = 0;
  constructor(
    readonly limit: number,
    readonly source: string,
    readonly what: string,
  ) {}

  spend(bytes: number, at: string): void {
    this.used += bytes;
    if (this.used > this.limit)
      throw new Error(`${this.source}: ${this.what} add up to more than the ${formatBytes(this.limit)} limit (at ${at})`);
  }
}

/** A storage as the pickle names it: `numel` elements from element `offset` of root storage `key`. */
class StorageRef {
  constructor(
    readonly dtype: StorageDtype,
    readonly key: string,
    readonly offset: number,
    readonly numel: number,
  ) {}
}

/** A tensor before its data are read: a strided window on a storage. */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** The global `torch.FloatStorage` and its kin: not callable, only named in persistent ids. */
class StorageType extends PyGlobal {
  constructor(
    name: string,
    readonly dtype: StorageDtype,
  ) {
    super('torch', name);
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

// ---------------------------------------------------------------- unpickling

function forbidden(module: string, name: string, source: string): never {
  throw new Error(`${source}: forbidden global '${module}.${name}': only tensors, storages and dicts are accepted`);
}

function intList(v: unknown, what: string, source: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (!items || !items.every(isCount)) {
    throw new Error(`${source}: tensor ${what} is not a tuple of non-negative integers`);
  }
  return items as number[];
}

function rebuildTensor(args: unknown[], source: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) {
    throw new Error(`${source}: tensor rebuilt from ${aType(storage)}, not a storage`);
  }
  if (!isCount(offset)) {
    throw new Error(`${source}: tensor storage offset ${String(offset)} is not a non-negative integer`);
  }
  const shape = intList(size, 'size', source);
  const strides = intList(stride, 'stride', source);
  if (shape.length !== strides.length) throw new Error(`${source}: tensor size [${shape}] and stride [${strides}] differ in length`);
  return new TensorRef(storage, offset, shape, strides);
}

function orderedDict(args: unknown[], source: string): PyDict {
  if (args.length !== 0) throw new Error(`${source}: OrderedDict built with arguments; only the empty form is accepted`);
  return new PyDict('OrderedDict');
}

/** The globals a state_dict needs; anything else is refused before it could be used. */
function findGlobal(module: string, name: string, source: string): PyGlobal {
  const g = (call?: (args: unknown[]) => unknown) => new PyGlobal(module, name, call);
  const key = `${module}.${name}`;
  switch (key) {
    case 'collections.OrderedDict':
      return g((args) => orderedDict(args, source));
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
      return g((args) => rebuildTensor(args, source));
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return g((args) => args[0]);
  }
  if (module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_TYPES, name)) return new StorageType(name, STORAGE_TYPES[name]);
  forbidden(module, name, source);
}

/**
 * persistent_load: ('storage', StorageType, key, location, numel[, view_metadata])
 * where view_metadata (legacy only) is None or (view_key, offset, view_numel).
 */
function makePersistentLoad(source: string, storages: Map<string, StorageRef>): (pid: unknown) => StorageRef {
  return (pid) => {
    const items = pid instanceof PyTuple ? pid.items : [];
    const [tag, type, key, , count, view] = items;
    if (tag !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || !isCount(count)) {
      throw new Error(`${source}: unknown persistent id (${aType(pid)}); only storages are accepted`);
    }
    const known = storages.get(key);
    if (known && known.dtype !== type.dtype)
      throw new Error(`${source}: storage '${key}' is used as both ${known.dtype} and ${type.dtype}`);
    if (!known || count > known.numel) storages.set(key, new StorageRef(type.dtype, key, 0, count));
    if (view instanceof PyTuple) return storageView(view.items, storages.get(key)!, source);
    return storages.get(key)!;
  };
}

function storageView(items: unknown[], root: StorageRef, source: string): StorageRef {
  const [, offset, count] = items;
  if (!isCount(offset) || !isCount(count)) throw new Error(`${source}: bad storage view of '${root.key}'`);
  return new StorageRef(root.dtype, root.key, offset, count);
}

function unpickleData(bytes: Uint8Array, start: number, source: string, storages: Map<string, StorageRef>) {
  return unpickle(bytes, start, {
    source,
    findGlobal: (module, name) => findGlobal(module, name, source),
    persistentLoad: makePersistentLoad(source, storages),
  });
}

/** A pickle that may hold only plain data (legacy headers and key lists). */
function unpicklePlain(bytes: Uint8Array, start: number, source: string) {
  return unpickle(bytes, start, { source, findGlobal: (module, name) => forbidden(module, name, source) });
}

// ---------------------------------------------------------------- storages

function swapBytes(b: Uint8Array, size: number): void {
  for (let i = 0; i < b.length; i += size) b.subarray(i, i + size).reverse();
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Typed elements of a storage from its raw bytes (copied, so aligned and not tied to the file). */
function storageElements(raw: Uint8Array, dtype: StorageDtype, bigEndian: boolean): TensorData {
  const size = STORAGE_ITEM_SIZE[dtype];
  const half = dtype === 'F16' || dtype === 'BF16';
  const out = half ? new Uint16Array(raw.length / 2) : allocData(dtype, raw.length / size);
  const bytes = new Uint8Array(out.buffer);
  bytes.set(raw);
  if (bigEndian) swapBytes(bytes, size);
  return out instanceof Uint16Array ? widen(out, dtype) : out;
}

/** F16 or BF16 bits to F32 values. */
function widen(halves: Uint16Array, dtype: StorageDtype): Float32Array {
  const out = new Float32Array(halves.length);
  if (dtype === 'BF16') {
    // bfloat16 is the top half of a float32
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  } else {
    for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
  }
  return out;
}

function tensorDtype(d: StorageDtype): Dtype {
  return d === 'F16' || d === 'BF16' ? 'F32' : d;
}

/** Row-major strides: elements of this layout are one run of the storage. */
function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

/** The tensor's elements in row-major order, whatever its offset and strides: a view of the storage when contiguous, else a copy. */
function gather(name: string, t: TensorRef, storage: TensorData, source: string, budget: Budget): Tensor {
  const dtype = tensorDtype(t.storage.dtype);
  const n = numel(t.shape);
  if (!Number.isSafeInteger(n)) throw new Error(`${source}: tensor '${name}' has shape [${t.shape}], too many elements`);
  budget.spend(n * storage.BYTES_PER_ELEMENT, `tensor '${name}'`);
  if (n === 0) return { dtype, shape: t.shape, data: allocData(dtype, 0) };
  const base = t.storage.offset + t.offset;
  const last = base + t.shape.reduce((acc, d, i) => acc + (d - 1) * t.stride[i], 0);
  const end = Math.min(t.storage.offset + t.storage.numel, storage.length);
  if (last >= end) throw new Error(`${source}: tensor '${name}' reads element ${last} of a storage of ${end}`);
  // More elements than the storage holds means an expanded (stride 0)
  // tensor; refusing it also keeps a forged shape from allocating gigabytes.
  if (n > t.storage.numel) {
    throw new Error(`${source}: tensor '${name}' has ${n} elements but its storage holds ${t.storage.numel}; save it with .contiguous()`);
  }
  if (isContiguous(t.shape, t.stride)) return { dtype, shape: t.shape, data: storage.subarray(base, base + n) };
  const out = allocData(dtype, n);
  copyStrided(storage, out, base, t.shape, t.stride);
  return { dtype, shape: t.shape, data: out };
}

function copyStrided(src: TensorData, out: TensorData, base: number, shape: number[], stride: number[]): void {
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let at = base;
  const set = out as unknown as { [i: number]: number | bigint };
  const get = src as unknown as { [i: number]: number | bigint };
  for (let i = 0; i < out.length; i++) {
    set[i] = get[at];
    // odometer over the dims, innermost fastest
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]++;
      at += stride[d];
      if (idx[d] < shape[d]) break;
      at -= idx[d] * stride[d];
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------- result

/** "an int", "a dict": the value's Python type with its article. */
function aType(v: unknown): string {
  const t = pyTypeName(v);
  return /^[aeiou]/i.test(t) ? `an ${t}` : `a ${t}`;
}

/** Flatten the top-level dict (and nested dicts, with dotted names) into tensors. */
function collect(
  value: unknown,
  source: string,
  opts: TorchPtOptions,
  materialize: (name: string, t: TensorRef) => Tensor,
): Map<string, Tensor> {
  if (!(value instanceof PyDict)) {
    const what = value instanceof TensorRef ? 'a single tensor' : aType(value);
    throw new Error(`${source}: holds ${what}, not a state_dict (a dict of tensors)`);
  }
  const out = new Map<string, Tensor>();
  const seen = new Set<PyDict>();
  const walk = (dict: PyDict, prefix: string, depth: number): void => {
    if (seen.has(dict)) throw new Error(`${source}: dict '${prefix}' contains itself`);
    if (depth > MAX_NESTING) throw new Error(`${source}: dicts nest more than ${MAX_NESTING} deep (at '${prefix.slice(0, 80)}...')`);
    seen.add(dict);
    for (const [k, v] of dict.map) {
      if (typeof k !== 'string') throw new Error(`${source}: key ${String(k)} in '${prefix}' is ${aType(k)}, not a string`);
      const name = prefix + k;
      if (v instanceof TensorRef) out.set(name, materialize(name, v));
      else if (v instanceof PyDict) walk(v, `${name}.`, depth + 1);
      else if (opts.nonTensors !== 'skip') {
        throw new Error(`${source}: '${name}' is ${aType(v)}, not a tensor (pass nonTensors: 'skip' to ignore such entries)`);
      }
    }
  };
  walk(value, '', 1);
  return out;
}

// ---------------------------------------------------------------- formats

function readZipPt(bytes: Uint8Array, source: string, opts: TorchPtOptions): Map<string, Tensor> {
  const entries = readZipDirectory(bytes, source);
  const pkl = [...entries.keys()].find((n) => n.endsWith('data.pkl') && n.split('/').length === 2);
  if (!pkl) throw new Error(`${source}: zip archive without <name>/data.pkl; not a torch.save file`);
  const prefix = pkl.slice(0, -'data.pkl'.length);
  const order = entries.get(`${prefix}byteorder`);
  const bigEndian = order !== undefined && new TextDecoder().decode(readZipEntry(bytes, order, source)).trim() === 'big';

  const storages = new Map<string, StorageRef>();
  const read = new Budget(opts.maxBytes ?? MAX_TENSOR_BYTES, source, 'storages');
  const { value } = unpickleData(readZipEntry(bytes, entries.get(pkl)!, source), 0, source, storages);
  const loaded = new Map<string, TensorData>();
  const load = (ref: StorageRef): TensorData => {
    let data = loaded.get(ref.key);
    if (!data) {
      data = zipStorage(bytes, entries.get(`${prefix}data/${ref.key}`), storages.get(ref.key)!, bigEndian, source, read);
      loaded.set(ref.key, data);
    }
    return data;
  };
  const budget = tensorBudget(source, opts);
  return collect(value, source, opts, (name, t) => gather(name, t, load(t.storage), source, budget));
}

function tensorBudget(source: string, opts: TorchPtOptions): Budget {
  return new Budget(opts.maxBytes ?? MAX_TENSOR_BYTES, source, 'tensors');
}

function zipStorage(
  bytes: Uint8Array,
  entry: ZipEntry | undefined,
  root: StorageRef,
  bigEndian: boolean,
  source: string,
  read: Budget,
): TensorData {
  if (!entry) throw new Error(`${source}: storage '${root.key}' is missing from the archive`);
  read.spend(entry.size, `storage '${root.key}'`);
  const raw = readZipEntry(bytes, entry, source);
  const need = root.numel * STORAGE_ITEM_SIZE[root.dtype];
  if (raw.length < need) throw new Error(`${source}: storage '${root.key}' has ${raw.length} bytes, needs ${need}`);
  return storageElements(raw.subarray(0, need), root.dtype, bigEndian);
}

function readLegacyPt(bytes: Uint8Array, source: string, opts: TorchPtOptions): Map<string, Tensor> {
  const storages = new Map<string, StorageRef>();
  // The data pickle is unpickled with the restricted globals right away, so a
  // malicious plain pickle is refused for what it is before the magic check.
  const magic = unpickleData(bytes, 0, source, storages);
  if (magic.value !== LEGACY_MAGIC) throw new Error(`${source}: not a PyTorch file (no zip archive and no legacy magic number)`);
  const protocol = unpicklePlain(bytes, magic.end, source);
  if (protocol.value !== LEGACY_PROTOCOL)
    throw new Error(`${source}: legacy protocol ${String(protocol.value)}, expected ${LEGACY_PROTOCOL}`);
  const sysInfo = unpicklePlain(bytes, protocol.end, source);
  const bigEndian = sysInfo.value instanceof PyDict && sysInfo.value.map.get('little_endian') === false;
  const data = unpickleData(bytes, sysInfo.end, source, storages);
  const keys = unpicklePlain(bytes, data.end, source);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
    throw new Error(`${source}: legacy storage key list is missing or not a list of strings`);
  }
  const loaded = legacyStorages(bytes, keys.end, keys.value as string[], storages, bigEndian, source);
  const budget = tensorBudget(source, opts);
  return collect(data.value, source, opts, (name, t) => gather(name, t, loaded.get(t.storage.key)!, source, budget));
}

/** After the pickles: for each key, a u64 LE element count and then the storage's bytes. */
function legacyStorages(
  bytes: Uint8Array,
  start: number,
  keys: string[],
  storages: Map<string, StorageRef>,
  bigEndian: boolean,
  source: string,
): Map<string, TensorData> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, TensorData>();
  let at = start;
  for (const key of keys) {
    const ref = storages.get(key);
    if (!ref) throw new Error(`${source}: storage '${key}' is listed but no tensor uses it`);
    if (at + 8 > bytes.length) throw new Error(`${source}: file ends before storage '${key}' (truncated file?)`);
    const count = view.getBigUint64(at, true);
    if (count !== BigInt(ref.numel)) throw new Error(`${source}: storage '${key}' holds ${count} elements, the pickle says ${ref.numel}`);
    const len = ref.numel * STORAGE_ITEM_SIZE[ref.dtype];
    if (at + 8 + len > bytes.length) throw new Error(`${source}: file ends inside storage '${key}' (truncated file?)`);
    out.set(key, storageElements(bytes.subarray(at + 8, at + 8 + len), ref.dtype, bigEndian));
    at += 8 + len;
  }
  for (const key of storages.keys()) {
    if (!out.has(key)) throw new Error(`${source}: storage '${key}' is used but missing from the file`);
  }
  return out;
}

function isTar(bytes: Uint8Array): boolean {
  return bytes.length > 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar';
}

/**
 * Read the tensors of a state_dict saved by torch.save, in the file's key
 * order. Nested dicts give dotted names; F16/BF16 become F32; a contiguous
 * tensor is a view of its storage (names that share a storage share memory,
 * as in PyTorch), any other is gathered into a contiguous copy.
 */
export function readTorchPt(bytes: Uint8Array, source = '<buffer>', opts: TorchPtOptions = {}): Map<string, Tensor> {
  if (isZip(bytes)) return readZipPt(bytes, source, opts);
  if (isTar(bytes)) throw new Error(`${source}: the tar format of PyTorch before 0.4 is not supported; re-save it with a newer torch.save`);
  if (bytes.length > 0 && bytes[0] === 0x80) return readLegacyPt(bytes, source, opts);
  throw new Error(`${source}: not a PyTorch file (neither a zip archive nor a pickle)`);
}

export function loadTorchPt(file: string, opts: TorchPtOptions = {}): Map<string, Tensor> {
  return readTorchPt(readRegularFile(file, 'PyTorch file', MAX_WEIGHTS_FILE_BYTES), file, opts);
}
