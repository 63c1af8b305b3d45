// A row of captioned pictures with an optional colour scale: the figures of
// gen saliency (image, map, overlay) and gen attack (original, change, adversarial).
import type { ColorMap, Scale } from './raster.js';
import { colorScale, doc, png, rect, text, textWidth, wrap } from './svg.js';

export interface Panel {
  title: string;
  /** the picture, a PNG of w×h pixels */
  tile: Buffer;
  w: number;
  h: number;
  caption: string[];
}

export interface PanelsSpec {
  title: string;
  panels: Panel[];
  /** the colour scale of the map panels, drawn at the right */
  scale?: { cmap: ColorMap; scale: Scale; label: string };
  note?: string;
}

const M = 16;

export function panelsFigure(s: PanelsSpec): {
  svg: string;
  layout: { width: number; height: number; panels: { x: number; y: number }[] };
} {
  const head = M + 44;
  const y0 = head + 10;
  const body = [text(M, M + 14, s.title, { size: 15, bold: true })];
  const at: { x: number; y: number }[] = [];
  let x = M;
  let bottom = y0;
  for (const p of s.panels) {
    at.push({ x, y: y0 });
    body.push(text(x, head, p.title, { size: 12, bold: true }), png(x, y0, p.w, p.h, p.tile), rect(x, y0, p.w, p.h));
    p.caption.forEach((l, i) => body.push(text(x, y0 + p.h + 18 + 15 * i, l, { size: 12 })));
    bottom = Math.max(bottom, y0 + p.h + 18 + 15 * p.caption.length, y0 + p.h);
    x += Math.max(p.w, textWidth(p.title, 12), ...p.caption.map((l) => textWidth(l, 12))) + 28;
  }
  if (s.scale) {
    const h = Math.max(80, Math.min(...s.panels.map((p) => p.h)));
    const bar = colorScale(x, y0, h, s.scale.cmap, s.scale.scale, s.scale.label);
    body.push(...bar.svg);
    x += bar.width + 28;
    bottom = Math.max(bottom, y0 + h + 8);
  }
  let width = Math.max(x - 28, M + textWidth(s.title, 15)) + M;
  let height = bottom + M;
  for (const line of wrap(s.note ?? '', Math.max(width - 2 * M, 320), 12)) {
    body.push(text(M, height + 4, line, { size: 12, fill: '#333' }));
    width = Math.max(width, M + textWidth(line, 12) + M);
    height += 17;
  }
  return { svg: doc(width, height, body), layout: { width, height, panels: at } };
}
