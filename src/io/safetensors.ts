// Reader and writer for the safetensors format:
//   u64 LE header length N | N bytes of JSON header | data section
// The header maps each tensor name to {dtype, shape, data_offsets:[begin,end]}
// (offsets relative to the data section) plus an optional "__metadata__"
// object of string -> string. Every problem in a file becomes an Error that
// names the file and the tensor or field at fault; a read never returns a
// partial result.

import * as os from 'node:os';
import { readRegularFile, writeFileAtomic } from '../util/fs.js';
import { MAX_WEIGHTS_FILE_BYTES } from './limits.js';

export type Dtype = 'F32' | 'F64' | 'I64' | 'I32' | 'U8';

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

type TypedArrayCtor = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): TensorData;
  new (length: number): TensorData;
  BYTES_PER_ELEMENT: number;
};

const ARRAY_OF: Record<Dtype, TypedArrayCtor> = {
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  I32: Int32Array,
  U8: Uint8Array,
};

export const DTYPES = Object.keys(ARRAY_OF) as Dtype[];

/** A header larger than this is surely not a tensor file (and would cost a lot to parse). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

// The typed arrays are read and written in the machine's byte order, which
// must be the file's (little-endian).
if (os.endianness() !== 'LE') throw new Error('tensorkiln io needs a little-endian machine');

export function itemSize(dtype: Dtype): number {
  return ARRAY_OF[dtype].BYTES_PER_ELEMENT;
}

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ARRAY_OF, s);
}

/** Element count of a shape; [] is a scalar with one element. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Which dtype a typed array holds, or undefined for other arrays. */
export function dtypeOfArray(data: unknown): Dtype | undefined {
  return DTYPES.find((d) => data instanceof ARRAY_OF[d]);
}

/** A zero-filled array for `dtype` with `n` elements. */
export function allocData(dtype: Dtype, n: number): TensorData {
  return new ARRAY_OF[dtype](n);
}

// ---------------------------------------------------------------- helpers

function filled<T extends Float32Array | Float64Array>(out: T, shape: number[], data: ArrayLike<number> | undefined, what: string): T {
  if (data !== undefined) {
    if (data.length !== out.length) throw new Error(`${what}: shape [${shape}] needs ${out.length} values, got ${data.length}`);
    out.set(data);
  }
  return out;
}

/** An F32 tensor, zero-filled unless data are given. */
export function f32(shape: number[], data?: ArrayLike<number>): Tensor & { dtype: 'F32'; data: Float32Array } {
  return { dtype: 'F32', shape: [...shape], data: filled(new Float32Array(numel(shape)), shape, data, 'f32') };
}

/** An F64 tensor, zero-filled unless data are given. */
export function f64(shape: number[], data?: ArrayLike<number>): Tensor & { dtype: 'F64'; data: Float64Array } {
  return { dtype: 'F64', shape: [...shape], data: filled(new Float64Array(numel(shape)), shape, data, 'f64') };
}

/** An I64 tensor (numbers or bigints), zero-filled unless values are given. */
export function i64(shape: number[], values?: ArrayLike<number | bigint>): Tensor & { dtype: 'I64'; data: BigInt64Array } {
  const out = new BigInt64Array(numel(shape));
  if (values !== undefined) {
    if (values.length !== out.length) throw new Error(`i64: shape [${shape}] needs ${out.length} values, got ${values.length}`);
    for (let i = 0; i < out.length; i++) out[i] = BigInt(values[i]);
  }
  return { dtype: 'I64', shape: [...shape], data: out };
}

/** The tensor as F32 (the same object if it already is). I64 values beyond 2^24 lose precision. */
export function toFloat32(t: Tensor): Tensor & { dtype: 'F32'; data: Float32Array } {
  if (t.dtype === 'F32') return t as Tensor & { dtype: 'F32'; data: Float32Array };
  const out = new Float32Array(t.data.length);
  if (t.data instanceof BigInt64Array) {
    for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
  } else {
    out.set(t.data);
  }
  return { dtype: 'F32', shape: [...t.shape], data: out };
}

// ---------------------------------------------------------------- reading

function fail(source: string, what: string): never {
  throw new Error(`${source}: ${what}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * The top-level keys of a JSON object in file order. JSON.parse puts
 * integer-like keys ("0", "12") first, so the order is taken from the text.
 * `text` must already be valid JSON whose top level is an object.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',') {
      expectKey = depth === 1;
    }
  }
  return keys;
}

function parseHeader(bytes: Uint8Array, source: string): { header: Record<string, unknown>; keys: string[]; dataStart: number } {
  if (bytes.length < 8) fail(source, `file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit`);
  if (n > BigInt(bytes.length - 8)) fail(source, `header length ${n} runs past the end of the file (${bytes.length} bytes)`);
  const headerLen = Number(n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    fail(source, 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) fail(source, 'header is not a JSON object');
  const keys = topLevelKeys(text);
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) fail(source, `header names '${k}' twice`);
    seen.add(k);
  }
  return { header, keys, dataStart: 8 + headerLen };
}

function readMetadata(value: unknown, source: string): Record<string, string> {
  if (!isPlainObject(value)) fail(source, '__metadata__ is not an object');
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(source, `__metadata__ value '${k}' is ${jsonType(v)}, not a string`);
  }
  // fromEntries keeps a key named "__proto__" as data, where `out[k] = v` would not
  return Object.fromEntries(Object.entries(value)) as Record<string, string>;
}

/** "an array", "a string", "null": a JSON value's type for messages. */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  const t = Array.isArray(v) ? 'array' : typeof v;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

interface Entry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

function readEntry(name: string, value: unknown, dataLen: number, source: string): Entry {
  const at = `tensor '${name}'`;
  if (!isPlainObject(value)) fail(source, `${at}: entry is ${jsonType(value)}, not an object`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!(field in value)) fail(source, `${at}: missing field '${field}'`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') fail(source, `${at}: dtype is ${jsonType(dtype)}, not a string`);
  if (!isDtype(dtype)) fail(source, `${at}: unknown dtype '${dtype}' (supported: ${DTYPES.join(', ')})`);
  if (!Array.isArray(shape)) fail(source, `${at}: shape is ${jsonType(shape)}, not an array`);
  shape.forEach((d, i) => {
    if (!isNonNegInt(d)) fail(source, `${at}: shape[${i}] is ${JSON.stringify(d)}, not a non-negative integer`);
  });
  if (!Array.isArray(offsets) || offsets.length !== 2) fail(source, `${at}: data_offsets is not a [begin, end] pair`);
  const [begin, end] = offsets;
  if (!isNonNegInt(begin) || !isNonNegInt(end))
    fail(source, `${at}: data_offsets ${JSON.stringify(offsets)} are not non-negative integers`);
  if (end < begin) fail(source, `${at}: data_offsets end ${end} is before begin ${begin}`);
  if (end > dataLen) fail(source, `${at}: data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes)`);
  const expected = numel(shape as number[]) * itemSize(dtype);
  if (end - begin !== expected) {
    fail(source, `${at}: ${end - begin} bytes of data, but ${dtype} [${shape}] needs ${expected}`);
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function checkOverlaps(entries: Entry[], source: string): void {
  const sorted = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) {
      fail(source, `tensors '${prev.name}' [${prev.begin}, ${prev.end}] and '${cur.name}' [${cur.begin}, ${cur.end}] overlap`);
    }
  }
}

/** View the bytes as the dtype's array when aligned, else copy them (typed arrays need alignment). */
function tensorData(bytes: Uint8Array, start: number, e: Entry): TensorData {
  const Ctor = ARRAY_OF[e.dtype];
  const byteOffset = bytes.byteOffset + start + e.begin;
  const count = (e.end - e.begin) / Ctor.BYTES_PER_ELEMENT;
  if (byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(bytes.buffer as ArrayBuffer, byteOffset, count);
  // new Uint8Array(view) copies; Buffer#slice would not.
  const copy = new Uint8Array(bytes.subarray(start + e.begin, start + e.end));
  return new Ctor(copy.buffer, 0, count);
}

/**
 * Parse a safetensors file. The tensors come in header order; their data are
 * views into `bytes` where aligned (so they share memory with it), copies otherwise.
 */
export function readSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const { header, keys, dataStart } = parseHeader(bytes, source);
  const dataLen = bytes.length - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const name of keys) {
    if (name === '__metadata__') metadata = readMetadata(header[name], source);
    else entries.push(readEntry(name, header[name], dataLen, source));
  }
  checkOverlaps(entries, source);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: tensorData(bytes, dataStart, e) });
  }
  return { tensors, metadata };
}

export function loadSafetensors(file: string): SafetensorsFile {
  return readSafetensors(readRegularFile(file, 'safetensors file', MAX_WEIGHTS_FILE_BYTES), file);
}

// ---------------------------------------------------------------- writing

function checkTensor(name: string, t: Tensor): void {
  const at = `writeSafetensors: tensor '${name}'`;
  if (name === '__metadata__') throw new Error(`${at}: the name is reserved for metadata`);
  if (!isDtype(t.dtype)) throw new Error(`${at}: unknown dtype '${String(t.dtype)}' (supported: ${DTYPES.join(', ')})`);
  if (!(t.data instanceof ARRAY_OF[t.dtype])) throw new Error(`${at}: dtype ${t.dtype} needs a ${ARRAY_OF[t.dtype].name}`);
  t.shape.forEach((d, i) => {
    if (!isNonNegInt(d)) throw new Error(`${at}: shape[${i}] is ${d}, not a non-negative integer`);
  });
  if (t.data.length !== numel(t.shape)) {
    throw new Error(`${at}: shape [${t.shape}] needs ${numel(t.shape)} elements, data has ${t.data.length}`);
  }
}

function toEntries(tensors: Map<string, Tensor> | [string, Tensor][]): [string, Tensor][] {
  const entries = Array.isArray(tensors) ? tensors : [...tensors];
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    if (seen.has(name)) throw new Error(`writeSafetensors: tensor '${name}' is given twice`);
    seen.add(name);
    checkTensor(name, t);
  }
  return entries;
}

/**
 * Serialize tensors. The header keeps the given order; the data section puts
 * 8-byte types first, then 4-byte, then 1-byte ones, with no gaps, so every
 * tensor is aligned to its element size (the layout of the golden files, and
 * gap-free as the reference implementation requires).
 */
export function writeSafetensors(tensors: Map<string, Tensor> | [string, Tensor][], metadata?: Record<string, string>): Uint8Array {
  const entries = toEntries(tensors);
  if (metadata !== undefined) readMetadata(metadata, 'writeSafetensors');
  const order = entries.map((_, i) => i).sort((a, b) => itemSize(entries[b][1].dtype) - itemSize(entries[a][1].dtype) || a - b);
  const offsets: [number, number][] = new Array(entries.length);
  let pos = 0;
  for (const i of order) {
    const len = entries[i][1].data.byteLength;
    offsets[i] = [pos, pos + len];
    pos += len;
  }
  // Built by hand rather than with one JSON.stringify so that integer-like
  // names keep their place.
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  entries.forEach(([name, t], i) => {
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: offsets[i] })}`);
  });
  const header = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil((8 + header.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + pos);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + padded);
  const dataStart = 8 + padded;
  entries.forEach(([, t], i) => {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), dataStart + offsets[i][0]);
  });
  return out;
}

export { writeFileAtomic };

export function saveSafetensors(file: string, tensors: Map<string, Tensor> | [string, Tensor][], metadata?: Record<string, string>): void {
  writeFileAtomic(file, writeSafetensors(tensors, metadata));
}
