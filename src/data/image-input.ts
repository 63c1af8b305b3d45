// A photo as a model input of any [C, H, W]: resized and centre-cropped to
// H x W (src/io/image.ts), then RGB (C = 3) or grayscale (C = 1, PIL's
// "L" weights 299/587/114), rounded to bytes as PIL's resize would be. One
// path for the image-folder reader and for `predict`, so both see the same pixels.

import { decodeImage, resizeCenterCrop, type RgbaImage } from '../io/image.ts';
import { MAX_IMAGE_FILE_BYTES } from '../io/limits.ts';
import { readRegularFile } from '../util/fs.ts';
import { shapeText, type ImageShape } from './dataset.ts';

const byte = (v: number): number => Math.min(255, Math.max(0, Math.round(v * 255)));

/** Throws unless images can be made into `shape` (1 or 3 channels). */
export function checkImageShape(shape: readonly number[], what: string): void {
  if (shape.length !== 3 || (shape[0] !== 1 && shape[0] !== 3))
    throw new Error(`${what} takes ${shapeText(shape)} inputs; images can feed only 1 (grayscale) or 3 (RGB) channels`);
}

/** Decoded RGBA pixels as `shape` bytes, CHW. */
export function toInputBytes(img: RgbaImage, shape: ImageShape): Uint8Array {
  const [c, h, w] = shape;
  const rgb = resizeCenterCrop(img, [h, w]);
  const plane = h * w;
  const out = new Uint8Array(c * plane);
  if (c === 3) for (let i = 0; i < out.length; i++) out[i] = byte(rgb[i]);
  else for (let p = 0; p < plane; p++) out[p] = byte((299 * rgb[p] + 587 * rgb[plane + p] + 114 * rgb[2 * plane + p]) / 1000);
  return out;
}

/** Reads a PNG or JPEG file as `shape` bytes (see toInputBytes). */
export function loadImageBytes(file: string, shape: ImageShape): Uint8Array {
  checkImageShape(shape, 'the model');
  return toInputBytes(decodeImage(readRegularFile(file, 'image file', MAX_IMAGE_FILE_BYTES), file), shape);
}
