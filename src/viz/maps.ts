// The feature-map figure of gen show: the input image beside a grid of one
// layer's channels, all drawn on one colour scale (so channels compare), with its bar.
import { imageTile, mapTile, scaleOf, type ColorMap, type Scale } from './raster.js';
import { colorScale, doc, png, rect, text, textWidth, wrap } from './svg.js';

export interface ImagePanel {
  /** CHW bytes, 1 or 3 channels */
  bytes: Uint8Array;
  shape: number[];
  caption: string[];
}

export interface MapsSpec {
  title: string;
  input: ImagePanel;
  /** one sample of the layer: [C, H, W], [C, L] or [F] */
  values: Float32Array;
  shape: number[];
  /** channels to draw (default: all, at most 64) */
  channels?: number[];
  cmap?: ColorMap;
  /** a line under the grid */
  note?: string;
}

export interface MapsLayout {
  width: number;
  height: number;
  /** where channel c's tile is: its top-left corner; each value is zoom×zoom pixels */
  tiles: { channel: number; x: number; y: number }[];
  zoom: number;
  /** the input image's top-left corner and zoom */
  input: { x: number; y: number; zoom: number };
  scale: Scale;
}

const M = 16;

/** [C, H, W] of a layer shape: a [C, L] value is C rows of L, an [F] one a single row. */
export function planes(shape: number[]): [number, number, number] {
  if (shape.length === 3) return [shape[0], shape[1], shape[2]];
  if (shape.length === 2) return [shape[0], 1, shape[1]];
  return [1, 1, shape[0]];
}

/** A zoom that draws an h×w image about `target` px on its longer side (at least 1, whole pixels). */
export function zoomFor(h: number, w: number, target: number): number {
  return Math.max(1, Math.round(target / Math.max(h, w)));
}

export function mapsFigure(s: MapsSpec): { svg: string; layout: MapsLayout } {
  const [C, H, W] = planes(s.shape);
  const shown = s.channels ?? [...Array(Math.min(C, 64)).keys()];
  const plane = H * W;
  const cmap = s.cmap ?? 'gray';
  const scale = scaleOf(shown.flatMap((c) => Array.from(s.values.subarray(c * plane, (c + 1) * plane))));
  const [ic, ih, iw] = s.input.shape;
  const izoom = zoomFor(ih, iw, 160);
  const zoom = zoomFor(H, W, shown.length === 1 ? 160 : 72);
  const cols = Math.ceil(Math.sqrt(shown.length * (W >= H ? 1 : 2)));
  const rows = Math.ceil(shown.length / cols);
  const tw = W * zoom;
  const th = H * zoom;
  const gap = 8;
  const label = 14;
  // the title, a line of headers, then the input and the first row of tiles (each under its channel number)
  const head = M + 44;
  const y0 = head + 10 + label;
  const body: string[] = [text(M, M + 14, s.title, { size: 15, bold: true }), text(M, head, 'input', { size: 12, bold: true })];
  body.push(png(M, y0, iw * izoom, ih * izoom, imageTile(s.input.bytes, ic, ih, iw, izoom)), rect(M, y0, iw * izoom, ih * izoom));
  s.input.caption.forEach((l, i) => body.push(text(M, y0 + ih * izoom + 18 + 15 * i, l, { size: 12 })));
  const captionW = Math.max(iw * izoom, ...s.input.caption.map((l) => textWidth(l, 12)));
  const gx = M + captionW + 32;
  const count = C > shown.length ? `${shown.length} of ${C} channels` : `${C} channel${C === 1 ? '' : 's'}`;
  body.push(text(gx, head, count, { size: 12, bold: true }));
  const tiles = shown.map((c, i) => ({ channel: c, x: gx + (i % cols) * (tw + gap), y: y0 + Math.floor(i / cols) * (th + label + gap) }));
  for (const t of tiles) {
    if (shown.length > 1) body.push(text(t.x, t.y - 3, String(t.channel), { size: 11, fill: '#444' }));
    const tile = mapTile(s.values.subarray(t.channel * plane, (t.channel + 1) * plane), H, W, scale, cmap, zoom);
    body.push(png(t.x, t.y, tw, th, tile), rect(t.x, t.y, tw, th, '#bbb'));
  }
  const gridW = cols * (tw + gap) - gap;
  const gridH = rows * (th + label + gap) - gap - label;
  const barH = Math.max(80, Math.min(gridH, 240));
  const bar = colorScale(gx + gridW + 24, y0, barH, cmap, scale, 'value');
  body.push(...bar.svg);
  let width = Math.max(gx + gridW + 24 + bar.width, M + textWidth(s.title, 15)) + M;
  let height = Math.max(y0 + gridH, y0 + ih * izoom + 18 + 15 * s.input.caption.length, y0 + barH + 8) + M;
  for (const line of wrap(s.note ?? '', Math.max(gridW + 24 + bar.width, 320), 12)) {
    body.push(text(gx, height + 4, line, { size: 12, fill: '#333' }));
    width = Math.max(width, gx + textWidth(line, 12) + M);
    height += 17;
  }
  return {
    svg: doc(width, height, body),
    layout: { width, height, tiles, zoom, input: { x: M, y: y0, zoom: izoom }, scale },
  };
}
