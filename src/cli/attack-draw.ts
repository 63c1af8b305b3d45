// The pictures of gen saliency and gen attack (loaded only when drawing).
import path from 'node:path';
import type { AttackResult } from '../api/inside.js';
import { writeFileAtomic } from '../util/fs.js';
import { zoomFor } from '../viz/maps.js';
import { panelsFigure } from '../viz/panels.js';
import { imageTile, mapTile, overlayTile, scaleOf } from '../viz/raster.js';
import { writeFigure } from '../viz/render.js';
import { num } from '../viz/svg.js';
import type { AttackCli } from './attack.js';
import type { Look } from './look.js';

const top = (l: Look, p: number[]) => {
  const best = p.indexOf(Math.max(...p));
  return `${l.classes[best]} ${p[best].toFixed(3)}`;
};

export async function saliencyFigure(l: Look, map: Float32Array, label: number, out: string): Promise<string> {
  const [C, H, W] = l.shape;
  const z = zoomFor(H, W, 160);
  const scale = { lo: 0, hi: scaleOf(map).hi };
  const caption = [l.source, ...(l.label === undefined ? [] : [`class: ${l.classes[l.label]}`])];
  const { svg } = panelsFigure({
    title: `${l.model.graph.name} · saliency of "${l.classes[label]}"`,
    panels: [
      { title: 'input', tile: imageTile(l.bytes, C, H, W, z), w: W * z, h: H * z, caption },
      { title: '|d loss / d x|', tile: mapTile(map, H, W, scale, 'inferno', z), w: W * z, h: H * z, caption: ['max over channels'] },
      { title: 'over the image', tile: overlayTile(l.bytes, C, map, H, W, scale, 'inferno', z), w: W * z, h: H * z, caption: [] },
    ],
    scale: { cmap: 'inferno', scale, label: '|grad|' },
    note: `cross-entropy of class ${l.classes[label]} in eval mode; the brighter a pixel, the more a small change of it moves the loss`,
  });
  await writeFigure(out, svg);
  return `${out}: saliency of ${l.classes[label]} for ${l.source}, |grad| up to ${num(scale.hi)}`;
}

export async function attackFigures(l: Look, r: AttackResult, o: AttackCli): Promise<void> {
  const [C, H, W] = l.shape;
  if (path.extname(o.out).toLowerCase() !== '.png')
    throw new Error(`${o.out}: the adversarial image is written as .png (lossless: a JPEG would change it)`);
  writeFileAtomic(o.out, imageTile(r.bytes, C, H, W, 1));
  if (!o.figure) return;
  const z = zoomFor(H, W, 160);
  const diff = new Float32Array(H * W);
  // the change per pixel, summed over channels, in 1/255 units
  for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) diff[p] += (r.bytes[c * H * W + p] - l.bytes[c * H * W + p]) / C;
  const scale = scaleOf(diff, true);
  const { svg } = panelsFigure({
    title: `${l.model.graph.name} · sign-gradient attack, eps ${Math.round(r.linf * 255)}/255`,
    panels: [
      { title: 'original', tile: imageTile(l.bytes, C, H, W, z), w: W * z, h: H * z, caption: [l.source, top(l, r.before)] },
      { title: 'change (mean over RGB)', tile: mapTile(diff, H, W, scale, 'rdbu', z), w: W * z, h: H * z, caption: [] },
      { title: 'adversarial', tile: imageTile(r.bytes, C, H, W, z), w: W * z, h: H * z, caption: [path.basename(o.out), top(l, r.after)] },
    ],
    scale: { cmap: 'rdbu', scale, label: '/255' },
  });
  await writeFigure(o.figure, svg);
}
