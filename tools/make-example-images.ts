// Writes examples/images/{airplane,bird}.png: the first airplane and bird of the
// shipped sample's test split, enlarged 4x (so predict exercises the resize).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { loadSample } from '../src/data/cifar.js';

// pngjs ships no type declarations; this is the part we use.
type Png = { width: number; height: number; data: Uint8Array };
const { PNG } = createRequire(import.meta.url)('pngjs') as {
  PNG: { new (o: { width: number; height: number }): Png; sync: { write(p: Png): Buffer } };
};

const { val } = loadSample();
const scale = 4;
for (const [label, name] of [
  [0, 'airplane'],
  [1, 'bird'],
] as const) {
  const i = val.labels.indexOf(label);
  const img = val.images.subarray(i * 3072, (i + 1) * 3072);
  const png = new PNG({ width: 32 * scale, height: 32 * scale });
  for (let y = 0; y < 32 * scale; y++)
    for (let x = 0; x < 32 * scale; x++) {
      const p = Math.floor(y / scale) * 32 + Math.floor(x / scale);
      const o = (y * 32 * scale + x) * 4;
      png.data[o] = img[p];
      png.data[o + 1] = img[1024 + p];
      png.data[o + 2] = img[2048 + p];
      png.data[o + 3] = 255;
    }
  fs.writeFileSync(`examples/images/${name}.png`, PNG.sync.write(png));
  console.log(`examples/images/${name}.png: test record ${i}`);
}
