// SVG to PNG with resvg (Rust, shipped as a binary inside its npm package) and the
// DejaVu Sans font from npm, so a figure's text looks the same on every machine,
// fonts installed or not. Loaded only by the verbs that draw.
import { createRequire } from 'node:module';
import path from 'node:path';
import { writeFileAtomic } from '../util/fs.js';

const require = createRequire(import.meta.url);

/** The TrueType files every figure's text is set in: DejaVu Sans and its bold. */
export function fontFiles(): string[] {
  const dir = path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  return ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((f) => path.join(dir, f));
}

export const FONT = 'DejaVu Sans';

/** PNG bytes of an SVG document; `scale` multiplies its size (2 for sharp text on screens). */
export async function svgToPng(svg: string, scale = 1): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const r = new Resvg(svg, {
    font: { fontFiles: fontFiles(), loadSystemFonts: false, defaultFontFamily: FONT, sansSerifFamily: FONT, serifFamily: FONT },
    fitTo: scale === 1 ? { mode: 'original' } : { mode: 'zoom', value: scale },
    background: 'white',
  });
  return r.render().asPng();
}

/** Writes a figure as .svg, or as .png (rendered); any other extension is an error naming the file. */
export async function writeFigure(file: string, svg: string, scale = 1): Promise<void> {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.svg') writeFileAtomic(file, svg);
  else if (ext === '.png') writeFileAtomic(file, await svgToPng(svg, scale));
  else throw new Error(`${file}: a figure is written as .png or .svg, not '${ext || 'no extension'}'`);
}
