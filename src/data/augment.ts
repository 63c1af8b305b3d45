// The CIFAR recipe's augmentation, as torchvision's RandomCrop(H, padding=p) then
// RandomHorizontalFlip(0.5): pad every side by p, cut an HxW window at a random
// offset, mirror it with probability 1/2. This is the reference: the interpreter
// runs it, the CPU runtime runs its C twin in the epoch's gather (model.cpp.hbs).
// The choices come from the counter hash of src/ops/hash.ts on (step seed, sample),
// so every backend crops and flips alike and a seed reproduces them.
import { hashBelow } from '../ops/hash.ts';
import { numel, shapeText, type ImageShape } from './dataset.ts';
import type { ChannelStats } from './transforms.ts';

/** What a user asks for: crop with this padding (0 or absent: no crop), flip or not. */
export interface AugmentOptions {
  /** padding of the random crop (torchvision's `padding`), 0..127 */
  crop?: number;
  flip?: boolean;
}

/** Augmentation as a backend runs it: `fill` is the padding's value per channel. */
export interface Augment {
  crop: number;
  flip: boolean;
  fill: number[];
}

/** Hash stream of the choices (dropout streams are 0..n-1, far below). */
export const AUGMENT_STREAM = 0x61756700;
export const MAX_CROP_PADDING = 127;

/** One sample's choices: window offset (dy, dx) in the padded image, in [0, 2p], and the flip. */
export interface AugmentDraw {
  dy: number;
  dx: number;
  flip: boolean;
}

/** The choices for sample `b` of the step whose seed is `seed` (stepSeed(base, step)). */
export function augmentDraw(seed: number, b: number, a: Pick<Augment, 'crop' | 'flip'>): AugmentDraw {
  const span = 2 * a.crop + 1;
  return {
    dy: a.crop ? hashBelow(seed, AUGMENT_STREAM, 3 * b, span) : a.crop,
    dx: a.crop ? hashBelow(seed, AUGMENT_STREAM, 3 * b + 1, span) : a.crop,
    flip: a.flip && hashBelow(seed, AUGMENT_STREAM, 3 * b + 2, 2) === 1,
  };
}

/** out[c][y][x] = padded[c][y + dy][x' + dx], x' = flip ? W-1-x : x; outside the image, fill[c]. */
export function augmentSample(src: Float32Array, shape: ImageShape, d: AugmentDraw, a: Augment, out: Float32Array): void {
  const [C, H, W] = shape;
  const oy = d.dy - a.crop;
  const ox = d.dx - a.crop;
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++) {
      const sy = y + oy;
      const row = (c * H + y) * W;
      for (let x = 0; x < W; x++) {
        const sx = (d.flip ? W - 1 - x : x) + ox;
        out[row + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? src[(c * H + sy) * W + sx] : a.fill[c];
      }
    }
}

/** A batch [B, C, H, W] augmented for the step seeded `seed`, as the CPU runtime gathers it. */
export function augmentBatch(x: Float32Array, batch: number, shape: ImageShape, a: Augment, seed: number): Float32Array {
  const per = numel(shape);
  const out = new Float32Array(batch * per);
  for (let b = 0; b < batch; b++)
    augmentSample(x.subarray(b * per, (b + 1) * per), shape, augmentDraw(seed, b, a), a, out.subarray(b * per, (b + 1) * per));
  return out;
}

/** Whether it changes anything. */
export const augments = (a: Augment | undefined): a is Augment => !!a && (a.crop > 0 || a.flip);

/** Throws unless `a` is a valid augmentation of `shape` images; messages name the option. */
export function checkAugment(a: Augment, shape: readonly number[]): Augment {
  if (!Number.isInteger(a.crop) || a.crop < 0 || a.crop > MAX_CROP_PADDING)
    throw new Error(`augment crop (the random crop's padding) must be an integer in 0..${MAX_CROP_PADDING}, got ${a.crop}`);
  if (typeof a.flip !== 'boolean') throw new Error(`augment flip must be true or false, got ${String(a.flip)}`);
  if (a.fill.length !== shape[0] || a.fill.some((v) => !Number.isFinite(v)))
    throw new Error(
      `augment fill must be ${shape[0]} finite values (one per channel of ${shapeText(shape)} images), got [${a.fill.join(', ')}]`,
    );
  return a;
}

/**
 * The padding of the recipe is a black pixel: torchvision crops the image before
 * ToTensor and Normalize, so after them the pad is (0 - mean) / std per channel,
 * rounded to float32 as normalize() rounds a black pixel.
 */
export function blackFill(stats: ChannelStats): number[] {
  return stats.mean.map((m, c) => Math.fround((0 - m) / stats.std[c]));
}

/** The user's options resolved for data normalised with `stats` (undefined when nothing is asked). */
export function resolveAugment(o: AugmentOptions | undefined, stats: ChannelStats): Augment | undefined {
  if (!o || (!o.crop && !o.flip)) return undefined;
  return { crop: o.crop ?? 0, flip: !!o.flip, fill: blackFill(stats) };
}

/** `--augment crop,flip` / `crop=2` / `flip` / `none` as options; unknown words are errors naming them. */
export function parseAugment(text: string): AugmentOptions {
  const o: AugmentOptions = {};
  if (text.trim() === 'none') return o;
  for (const word of text.split(',').map((w) => w.trim())) {
    const m = /^crop(?:=(\d+))?$/.exec(word);
    if (m) {
      const p = m[1] === undefined ? 4 : Number(m[1]);
      if (p > MAX_CROP_PADDING) throw new Error(`--augment ${word}: the crop's padding must be at most ${MAX_CROP_PADDING}`);
      o.crop = p;
    } else if (word === 'flip') o.flip = true;
    else throw new Error(`--augment ${text}: unknown '${word}'; expected crop (padding 4), crop=<padding>, flip, or none`);
  }
  return o;
}
