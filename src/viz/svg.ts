// The few SVG elements the figures are made of; text is DejaVu Sans (render.ts).
import { colorBar, type ColorMap, type Scale } from './raster.js';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A width for text of DejaVu Sans at `size` px, on the safe side (its glyphs average ~0.55 em). */
export function textWidth(s: string, size: number): number {
  return Math.ceil(s.length * size * 0.62);
}

export interface TextStyle {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  bold?: boolean;
  fill?: string;
}

export function text(x: number, y: number, s: string, o: TextStyle = {}): string {
  const attrs = [`x="${x}"`, `y="${y}"`, `font-size="${o.size ?? 12}"`, `font-family="DejaVu Sans"`];
  if (o.anchor && o.anchor !== 'start') attrs.push(`text-anchor="${o.anchor}"`);
  if (o.bold) attrs.push('font-weight="bold"');
  if (o.fill) attrs.push(`fill="${o.fill}"`);
  return `<text ${attrs.join(' ')}>${esc(s)}</text>`;
}

/** An embedded PNG, drawn pixel for pixel (no smoothing when scaled). */
export function png(x: number, y: number, w: number, h: number, bytes: Buffer): string {
  return `<image x="${x}" y="${y}" width="${w}" height="${h}" image-rendering="optimizeSpeed" preserveAspectRatio="none" href="data:image/png;base64,${bytes.toString('base64')}"/>`;
}

export function rect(x: number, y: number, w: number, h: number, stroke = '#888'): string {
  return `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="${stroke}" stroke-width="1"/>`;
}

export function doc(width: number, height: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Words of `s` in lines at most `width` px wide at `size`. */
export function wrap(s: string, width: number, size: number): string[] {
  const lines: string[] = [];
  for (const word of s.split(/\s+/).filter(Boolean)) {
    const last = lines[lines.length - 1];
    if (last !== undefined && textWidth(`${last} ${word}`, size) <= width) lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

/** Three significant digits, no trailing zeros: 0.0123, -1.5, 240. */
export function num(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(3)));
}

/** A vertical colour bar with the scale's ends (and 0 when inside) ticked; returns its elements and width. */
export function colorScale(x: number, y: number, h: number, cmap: ColorMap, s: Scale, label: string): { svg: string[]; width: number } {
  const w = 14;
  const ticks = [s.hi, ...(s.lo < 0 && s.hi > 0 ? [0] : []), s.lo];
  const at = (v: number) => y + ((s.hi - v) / (s.hi - s.lo)) * h;
  const svg = [png(x, y, w, h, colorBar(cmap, w, h)), rect(x, y, w, h)];
  for (const v of ticks) {
    const ty = at(v);
    svg.push(`<line x1="${x + w}" y1="${ty}" x2="${x + w + 4}" y2="${ty}" stroke="#444"/>`, text(x + w + 7, ty + 4, num(v), { size: 11 }));
  }
  const tickW = Math.max(...ticks.map((v) => textWidth(num(v), 11)));
  svg.push(text(x, y - 12, label, { size: 11 }));
  return { svg, width: Math.max(w + 7 + tickW, textWidth(label, 11)) };
}
