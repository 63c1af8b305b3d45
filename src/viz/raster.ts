// Values as pixels: colour maps (d3-scale-chromatic's, as 256-entry tables), and
// arrays drawn as PNG tiles enlarged by whole pixels (no smoothing), ready to embed in an SVG.
import { interpolateInferno, interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import { encodePng } from '../io/image.js';

export type ColorMap = 'gray' | 'viridis' | 'inferno' | 'rdbu';

const tables = new Map<ColorMap, Uint8Array>();

/** 256 RGB triples of a colour map, from low (index 0) to high. */
export function colorTable(name: ColorMap): Uint8Array {
  let t = tables.get(name);
  if (t) return t;
  t = new Uint8Array(256 * 3);
  // RdBu runs red (low) to blue (high)
  const f = { viridis: interpolateViridis, inferno: interpolateInferno, rdbu: (v: number) => interpolateRdBu(1 - v) }[name as 'viridis'];
  for (let i = 0; i < 256; i++) {
    const rgb = name === 'gray' ? [i, i, i] : cssRgb(f(i / 255));
    t.set(rgb, 3 * i);
  }
  tables.set(name, t);
  return t;
}

/** [r, g, b] of the colours d3-scale-chromatic returns: '#rrggbb' or 'rgb(r, g, b)'. */
function cssRgb(css: string): number[] {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  const dec = /^rgb\((\d+), (\d+), (\d+)\)$/.exec(css);
  if (hex) return hex.slice(1, 4).map((h) => parseInt(h, 16));
  if (dec) return dec.slice(1, 4).map(Number);
  throw new Error(`internal: unexpected colour '${css}'`);
}

/** A value range for a colour map; a constant array gets a unit range around its value. */
export interface Scale {
  lo: number;
  hi: number;
}

export function scaleOf(values: ArrayLike<number>, symmetric = false): Scale {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error('cannot draw values that are not finite');
  if (symmetric) [lo, hi] = [-Math.max(-lo, hi), Math.max(-lo, hi)];
  return hi > lo ? { lo, hi } : { lo: lo - 0.5, hi: hi + 0.5 };
}

/** The colour-table index of a value: round(255 · (v − lo) / (hi − lo)), clamped. */
export function level(v: number, s: Scale): number {
  return Math.min(255, Math.max(0, Math.round((255 * (v - s.lo)) / (s.hi - s.lo))));
}

/** PNG of an h×w array through a colour map, each value a zoom×zoom block. */
export function mapTile(values: ArrayLike<number>, h: number, w: number, s: Scale, cmap: ColorMap, zoom: number): Buffer {
  const t = colorTable(cmap);
  return blocks(
    h,
    w,
    (y, x, px) => {
      const k = 3 * level(values[y * w + x], s);
      px.set(t.subarray(k, k + 3));
    },
    zoom,
  );
}

/** PNG of an image given as CHW bytes (1 or 3 channels), each pixel a zoom×zoom block. */
export function imageTile(bytes: Uint8Array, c: number, h: number, w: number, zoom: number): Buffer {
  const plane = h * w;
  return blocks(
    h,
    w,
    (y, x, px) => {
      for (let k = 0; k < 3; k++) px[k] = bytes[(c === 3 ? k * plane : 0) + y * w + x];
    },
    zoom,
  );
}

/** A vertical colour bar, high at the top: width × height pixels. */
export function colorBar(cmap: ColorMap, width: number, height: number): Buffer {
  const t = colorTable(cmap);
  const top = { lo: 0, hi: Math.max(1, height - 1) };
  return blocks(
    height,
    1,
    (y, _x, px) => {
      const k = 3 * level(height - 1 - y, top);
      px.set(t.subarray(k, k + 3));
    },
    width,
    1,
  );
}

/** PNG of h×w cells, cell (y, x) coloured by pixel(), each zx×zy pixels. */
function blocks(h: number, w: number, pixel: (y: number, x: number, px: Uint8Array) => void, zx: number, zy = zx): Buffer {
  const W = w * zx;
  const H = h * zy;
  const data = new Uint8Array(W * H * 4);
  const px = new Uint8Array(3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      pixel(y, x, px);
      for (let dy = 0; dy < zy; dy++)
        for (let dx = 0; dx < zx; dx++) {
          const o = ((y * zy + dy) * W + x * zx + dx) * 4;
          data[o] = px[0];
          data[o + 1] = px[1];
          data[o + 2] = px[2];
          data[o + 3] = 255;
        }
    }
  return encodePng({ width: W, height: H, data });
}

/** PNG of an image (CHW bytes) with an h×w map laid over it: 45% of its gray, 55% of the map's colour. */
export function overlayTile(
  bytes: Uint8Array,
  c: number,
  values: ArrayLike<number>,
  h: number,
  w: number,
  s: Scale,
  cmap: ColorMap,
  zoom: number,
): Buffer {
  const t = colorTable(cmap);
  const plane = h * w;
  return blocks(
    h,
    w,
    (y, x, px) => {
      const i = y * w + x;
      const gray = c === 3 ? (299 * bytes[i] + 587 * bytes[plane + i] + 114 * bytes[2 * plane + i]) / 1000 : bytes[i];
      const k = 3 * level(values[i], s);
      for (let j = 0; j < 3; j++) px[j] = Math.round(0.45 * gray + 0.55 * t[k + j]);
    },
    zoom,
  );
}
