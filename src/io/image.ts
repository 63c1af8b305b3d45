// Loads a photo (PNG or JPEG) as a network input: a [3, H, W] CHW
// Float32Array in [0, 1] (default 32x32), like torchvision's
// `Compose([Resize(32), CenterCrop(32), ToTensor()])`. Normalise it with the
// training statistics (data/transforms.ts `normalize`) before inference.
//
// Choices:
// - Format from the magic bytes, not the file name.
// - Transparency is composited onto white: fully transparent pixels often
//   hold arbitrary colours, and a cut-out bird on white is what a viewer sees.
// - Grayscale and palette images come out with R = G = B.
// - Resize: shorter side to 32 (longer side truncated, as torchvision; for an
//   H x W target, the side that makes the image cover H x W), by
//   area averaging when shrinking (each output pixel is the exact mean of
//   the source area it covers, so no aliasing from big photos) and bilinear
//   interpolation when enlarging; then the centre 32x32 crop.

import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { readRegularFile } from '../util/fs.js';
import { MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS } from './limits.js';

// pngjs ships no type declarations (src/types/pngjs.d.ts); this is the part we use.
interface PngImage {
  width: number;
  height: number;
  data: Uint8Array;
}
const { PNG } = pngjs as {
  PNG: { sync: { read(buf: Uint8Array): PngImage; write(png: PngImage, o?: { colorType?: number }): Buffer } };
};

/** PNG bytes of RGBA pixels (8 bits per channel). */
export function encodePng(img: RgbaImage): Buffer {
  return PNG.sync.write({ width: img.width, height: img.height, data: img.data }, { colorType: 6 });
}

/** Decoded pixels: width*height*4 bytes, RGBA, row by row. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function tooLarge(source: string, what: string): Error {
  return new Error(`${source}: ${what}, over the limit of ${MAX_IMAGE_PIXELS.toLocaleString('en')} pixels`);
}

/** A size that the file is too short to hold: refused before a decoder allocates for it. */
function tooShort(source: string, format: string, w: number, h: number, need: number, have: number): Error {
  return new Error(
    `${source}: ${format} claims ${w}x${h} pixels, which take at least ${need} bytes, but the file has ${have}: truncated or corrupt`,
  );
}

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/**
 * A PNG's size from its IHDR chunk (always first), checked before anything is
 * decoded: at most MAX_IMAGE_PIXELS, and no more rows than its compressed data
 * can hold (deflate expands at most 1032:1).
 */
function checkPngSize(bytes: Uint8Array, source: string): void {
  if (bytes.length < 26) return; // pngjs reports the truncation
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = v.getUint32(16);
  const h = v.getUint32(20);
  if (w * h > MAX_IMAGE_PIXELS) throw tooLarge(source, `PNG of ${w}x${h} pixels`);
  const bits = bytes[24] * (PNG_CHANNELS[bytes[25]] ?? 1);
  const raw = h * (1 + Math.ceil((w * bits) / 8)); // a filter byte per row
  if (raw > 1032 * bytes.length) throw tooShort(source, 'PNG', w, h, Math.ceil(raw / 1032), bytes.length);
}

/**
 * A JPEG's size from its frame header (SOFn), checked before decoding: at most
 * MAX_IMAGE_PIXELS, and at least one bit of data per 8x8 block of the first
 * component (its DC coefficient), which a truncated or forged file lacks.
 */
function checkJpegSize(bytes: Uint8Array, source: string): void {
  let at = 2;
  while (at + 9 < bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1];
    const len = (bytes[at + 2] << 8) | bytes[at + 3];
    // SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const h = (bytes[at + 5] << 8) | bytes[at + 6];
      const w = (bytes[at + 7] << 8) | bytes[at + 8];
      if (w * h > MAX_IMAGE_PIXELS) throw tooLarge(source, `JPEG of ${w}x${h} pixels`);
      const blocks = Math.ceil(w / 8) * Math.ceil(h / 8);
      if (blocks / 8 > bytes.length) throw tooShort(source, 'JPEG', w, h, Math.ceil(blocks / 8), bytes.length);
      return;
    }
    if (marker === 0xda) return; // scan data: no frame header before it, jpeg-js reports that
    at += 2 + len;
  }
}

/** Decodes PNG or JPEG bytes to RGBA; `source` names the image in errors. At most MAX_IMAGE_PIXELS pixels. */
export function decodeImage(bytes: Uint8Array, source: string): RgbaImage {
  let img: RgbaImage;
  if (startsWith(bytes, PNG_MAGIC)) {
    checkPngSize(bytes, source);
    try {
      img = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      throw new Error(`${source}: corrupt PNG image: ${message(e)}`, { cause: e });
    }
  } else if (startsWith(bytes, JPEG_MAGIC)) {
    checkJpegSize(bytes, source);
    try {
      // Not tolerant: a truncated file should fail, not come back half grey.
      img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        tolerantDecoding: false,
        maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6,
      });
    } catch (e) {
      if (/maxResolutionInMP/.test(message(e))) throw tooLarge(source, `JPEG with more pixels (jpeg-js: ${message(e)})`);
      throw new Error(`${source}: corrupt JPEG image: ${message(e)}`, { cause: e });
    }
  } else {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`${source}: unsupported image format (expected PNG or JPEG; first bytes: ${head || 'none, empty file'})`);
  }
  if (img.width < 1 || img.height < 1 || img.data.length !== img.width * img.height * 4) {
    throw new Error(`${source}: decoded to ${img.width}x${img.height} with ${img.data.length} bytes; corrupt image`);
  }
  return img;
}

/** Output size: one number for size x size, or [height, width]. */
export type ImageSize = number | readonly [height: number, width: number];

/** Reads a PNG or JPEG file as a [3, height, width] CHW Float32Array in [0, 1]. */
export function loadImage(path: string, size: ImageSize = 32): Float32Array {
  return resizeCenterCrop(decodeImage(readRegularFile(path, 'image file', MAX_IMAGE_FILE_BYTES), path), size);
}

/** One output pixel along an axis: source indices and their weights (summing to 1). */
type Taps = { index: number[]; weight: number[] };

/** Weights for output pixels first..first+count-1 when scaling srcLen to dstLen. */
export function axisTaps(srcLen: number, dstLen: number, first: number, count: number): Taps[] {
  const ratio = srcLen / dstLen;
  const taps: Taps[] = [];
  for (let i = first; i < first + count; i++) {
    const t: Taps = { index: [], weight: [] };
    if (ratio >= 1) {
      // Area: source pixel j covers [j, j+1); output i covers [i*ratio, (i+1)*ratio).
      const lo = i * ratio;
      const hi = (i + 1) * ratio;
      for (let j = Math.floor(lo); j < Math.min(Math.ceil(hi), srcLen); j++) {
        const w = Math.min(hi, j + 1) - Math.max(lo, j);
        if (w > 0) {
          t.index.push(j);
          t.weight.push(w / ratio);
        }
      }
    } else {
      // Bilinear with pixel centres aligned (align_corners=False), edges clamped.
      const x = Math.min(Math.max((i + 0.5) * ratio - 0.5, 0), srcLen - 1);
      const j = Math.floor(x);
      const f = x - j;
      t.index.push(j, Math.min(j + 1, srcLen - 1));
      t.weight.push(1 - f, f);
    }
    taps.push(t);
  }
  return taps;
}

/** Python's round(): halves go to the even neighbour (as torchvision's CenterCrop). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  if (x - f !== 0.5) return Math.round(x);
  return f % 2 === 0 ? f : f + 1;
}

/** Resize to cover the target (shorter side to `size` when square), centre crop, RGBA -> RGB on white; CHW in [0, 1]. */
export function resizeCenterCrop(img: RgbaImage, size: ImageSize = 32): Float32Array {
  const { width: w, height: h, data } = img;
  const [th, tw] = typeof size === 'number' ? [size, size] : size;
  // torchvision Resize(int): the binding side is exact, the other truncated, not rounded.
  const byHeight = th * w >= tw * h;
  const rh = byHeight ? th : Math.floor((tw * h) / w);
  const rw = byHeight ? Math.floor((th * w) / h) : tw;
  const cols = axisTaps(w, rw, roundHalfEven((rw - tw) / 2), tw);
  const rows = axisTaps(h, rh, roundHalfEven((rh - th) / 2), th);

  // Horizontal pass over every source row, into row-major [h][tw][3].
  const mid = new Float64Array(h * tw * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < tw; x++) {
      const { index, weight } = cols[x];
      let r = 0,
        g = 0,
        b = 0;
      for (let k = 0; k < index.length; k++) {
        const p = (y * w + index[k]) * 4;
        const a = data[p + 3] / 255;
        const wk = weight[k] / 255;
        r += wk * (data[p] * a + 255 * (1 - a));
        g += wk * (data[p + 1] * a + 255 * (1 - a));
        b += wk * (data[p + 2] * a + 255 * (1 - a));
      }
      const o = (y * tw + x) * 3;
      mid[o] = r;
      mid[o + 1] = g;
      mid[o + 2] = b;
    }
  }

  // Vertical pass, into CHW.
  const out = new Float32Array(3 * th * tw);
  for (let y = 0; y < th; y++) {
    const { index, weight } = rows[y];
    for (let x = 0; x < tw; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = 0; k < index.length; k++) v += weight[k] * mid[(index[k] * tw + x) * 3 + c];
        out[c * th * tw + y * tw + x] = v;
      }
    }
  }
  return out;
}
