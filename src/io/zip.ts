// A small zip reader: the central directory, then one entry at a time.
// Enough for PyTorch's .pt archives (stored entries, zip64 records) and for
// deflated entries written by other tools; no encryption, no multi-disk.

import * as zlib from 'node:zlib';
import { DEFLATE_FREE_BYTES, formatBytes, MAX_DEFLATE_RATIO } from './limits.js';

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly source: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(what: string): never {
    throw new Error(`${this.source}: corrupt zip archive: ${what}`);
  }

  need(at: number, len: number, what: string): void {
    if (at < 0 || at + len > this.bytes.length) this.fail(`${what} at byte ${at} runs past the end of the file`);
  }

  u16(at: number): number {
    return this.view.getUint16(at, true);
  }

  u32(at: number): number {
    return this.view.getUint32(at, true);
  }

  u64(at: number): number {
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`64-bit field at byte ${at} is too large`);
    return Number(v);
  }
}

/** Where the central directory is and how many entries it has. */
function findDirectory(r: Reader): { offset: number; size: number; count: number } {
  const min = Math.max(0, r.bytes.length - 22 - 0xffff);
  let eocd = -1;
  for (let at = r.bytes.length - 22; at >= min; at--) {
    if (r.u32(at) === SIG_EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) r.fail('no end-of-central-directory record (truncated file?)');
  let count = r.u16(eocd + 10);
  let size = r.u32(eocd + 12);
  let offset = r.u32(eocd + 16);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || r.u32(loc) !== SIG_LOCATOR64) r.fail('zip64 locator missing');
    const at = r.u64(loc + 8);
    r.need(at, 56, 'zip64 end record');
    if (r.u32(at) !== SIG_EOCD64) r.fail('zip64 end record missing');
    count = r.u64(at + 32);
    size = r.u64(at + 40);
    offset = r.u64(at + 48);
  }
  r.need(offset, size, 'central directory');
  return { offset, size, count };
}

/** Sizes and offset that overflow 32 bits live in the zip64 extra field (id 1), in this order. */
function applyZip64(r: Reader, e: ZipEntry, extraAt: number, extraLen: number): void {
  let at = extraAt;
  while (at + 4 <= extraAt + extraLen) {
    const id = r.u16(at);
    const len = r.u16(at + 2);
    if (at + 4 + len > extraAt + extraLen)
      r.fail(`extra field 0x${id.toString(16).padStart(4, '0')} of entry '${e.name}' claims ${len} bytes, past the end of its extra data`);
    if (id === 0x0001) {
      let p = at + 4;
      for (const field of ['size', 'compressedSize', 'localOffset'] as const) {
        if (e[field] === 0xffffffff && p + 8 <= at + 4 + len) {
          e[field] = r.u64(p);
          p += 8;
        }
      }
    }
    at += 4 + len;
  }
}

/** The archive's entries by name, in directory order. */
export function readZipDirectory(bytes: Uint8Array, source = '<buffer>'): Map<string, ZipEntry> {
  const r: Reader = new Reader(bytes, source);
  if (bytes.length < 22) r.fail(`file is only ${bytes.length} bytes`);
  const dir = findDirectory(r);
  const entries = new Map<string, ZipEntry>();
  let at = dir.offset;
  for (let i = 0; i < dir.count; i++) {
    r.need(at, 46, 'central directory entry');
    if (r.u32(at) !== SIG_CENTRAL) r.fail(`bad central directory entry ${i} at byte ${at}`);
    const nameLen = r.u16(at + 28);
    const extraLen = r.u16(at + 30);
    const commentLen = r.u16(at + 32);
    r.need(at + 46, nameLen + extraLen + commentLen, 'central directory entry');
    const e: ZipEntry = {
      name: new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen)),
      flags: r.u16(at + 8),
      method: r.u16(at + 10),
      crc32: r.u32(at + 16),
      compressedSize: r.u32(at + 20),
      size: r.u32(at + 24),
      localOffset: r.u32(at + 42),
    };
    applyZip64(r, e, at + 46 + nameLen, extraLen);
    entries.set(e.name, e);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The uncompressed bytes of one entry, checked against its size and CRC-32. */
export function readZipEntry(bytes: Uint8Array, e: ZipEntry, source = '<buffer>'): Uint8Array {
  const r: Reader = new Reader(bytes, source);
  if (e.flags & 1) r.fail(`entry '${e.name}' is encrypted`);
  r.need(e.localOffset, 30, `local header of '${e.name}'`);
  if (r.u32(e.localOffset) !== SIG_LOCAL) r.fail(`bad local header for '${e.name}'`);
  const start = e.localOffset + 30 + r.u16(e.localOffset + 26) + r.u16(e.localOffset + 28);
  r.need(start, e.compressedSize, `data of '${e.name}'`);
  const raw = bytes.subarray(start, start + e.compressedSize);
  let data: Uint8Array;
  if (e.method === 0) {
    data = raw;
  } else if (e.method === 8) {
    // deflate cannot expand more than about 1032:1; tensors expand far less (a zip bomb would)
    if (e.size > 1032 * e.compressedSize + 1024) r.fail(`entry '${e.name}' claims an impossible size`);
    if (e.size > DEFLATE_FREE_BYTES && e.size > MAX_DEFLATE_RATIO * e.compressedSize)
      r.fail(
        `entry '${e.name}' would inflate ${e.compressedSize} bytes to ${e.size}, over the ${MAX_DEFLATE_RATIO}:1 limit for entries above ${formatBytes(DEFLATE_FREE_BYTES)}`,
      );
    try {
      data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      r.fail(`entry '${e.name}' does not inflate (${(err as Error).message})`);
    }
  } else {
    r.fail(`entry '${e.name}' uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
  }
  if (data.length !== e.size) r.fail(`entry '${e.name}' has ${data.length} bytes, the directory says ${e.size}`);
  if (crc32(data) !== e.crc32) r.fail(`entry '${e.name}' fails its CRC-32 check`);
  return data;
}

let crcTable: Uint32Array | undefined;

export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
