// What gen show, saliency and attack share: the model with its weights, and one
// input image (a file, or the N-th image of the validation split) both as the
// bytes to draw and normalised for the model.
import path from 'node:path';
import type { Command } from 'commander';
import { modelClasses, modelInput } from '../api/data.js';
import { openModel, type BackendName } from '../api/open.js';
import { loadWeights, type WeightsInfo } from '../api/workflow.js';
import { loadImageBytes } from '../data/image-input.js';
import { parseDataSpec, readData } from '../data/source.js';
import { channelStats, normalize, type ChannelStats } from '../data/transforms.js';
import type { TrainableModel } from '../train/model.js';
import type { ModelOptions } from './common.js';
import { dataOptions, readOptions, type DataCli } from './data.js';

export interface LookCli extends ModelOptions, DataCli {
  weights?: string;
  image?: string;
  index?: string;
  backend: BackendName;
  /** where a compiled backend builds its package (API only; the CLI: generated/, shared with gen train and eval) */
  outDir?: string;
}

export function lookOptions(cmd: Command, weightsRequired: boolean): Command {
  const w = ['--weights <file>', 'checkpoint, safetensors state_dict or PyTorch .pt'] as const;
  return dataOptions(
    weightsRequired ? cmd.requiredOption(...w) : cmd.option(w[0], `${w[1]} (default: the initial weights)`),
    'where --index takes its image, and the normalisation and class names when the weights carry none',
  )
    .option('--image <file>', 'a PNG or JPEG, resized and centre-cropped to the model input')
    .option('--index <N>', 'the N-th image (from 0) of the validation split')
    .option('--backend <name>', 'interp (default: one image needs no compiled package) | cpu | cuda | cuda-emu', 'interp');
}

/** The model and one image: bytes to draw, x for the model, its label when known. */
export interface Look {
  model: TrainableModel;
  /** CHW bytes of the image as the model sees it (resized, cropped) */
  bytes: Uint8Array;
  shape: [number, number, number];
  /** [1, C, H, W], normalised */
  x: Float32Array;
  normalization: ChannelStats;
  classes: string[];
  /** the true class of a validation image */
  label?: number;
  /** 'bird.png', 'val image 3' */
  source: string;
}

export async function look(file: string, o: LookCli): Promise<Look> {
  if ((o.image === undefined) === (o.index === undefined)) throw new Error('give one input: --image <file> or --index <N>');
  const model = await openModel({ file, ...o }, { backend: o.backend, outDir: o.outDir });
  const info: WeightsInfo = o.weights ? loadWeights(model, o.weights) : {};
  const shape = modelInput(model);
  const per = shape[0] * shape[1] * shape[2];
  // the data is read only for what the image and the weights do not say
  const needData = o.index !== undefined || !info.normalization || !info.classes;
  const raw = needData
    ? readData(parseDataSpec(o.data), readOptions(model, o, o.weights ? { file: o.weights, info } : undefined))
    : undefined;
  const normalization = info.normalization ?? channelStats(raw!.train.images, raw!.train.shape);
  const classes = info.classes ?? raw!.classes;
  if (classes.length !== modelClasses(model))
    throw new Error(
      `${model.graph.name} outputs ${modelClasses(model)} classes but the data has ${classes.length} (${classes.join(', ')})`,
    );
  let bytes: Uint8Array;
  let label: number | undefined;
  let source: string;
  if (o.image !== undefined) {
    bytes = loadImageBytes(o.image, shape);
    source = path.basename(o.image);
  } else {
    const n = Number(o.index);
    const count = raw!.val.labels.length;
    if (!Number.isInteger(n) || n < 0 || n >= count)
      throw new Error(`--index must be an integer in 0..${count - 1} (the validation images), got '${o.index}'`);
    bytes = raw!.val.images.slice(n * per, (n + 1) * per);
    label = raw!.val.labels[n];
    source = `val image ${n}`;
  }
  return { model, bytes, shape, x: normalize(bytes, normalization, shape), normalization, classes, label, source };
}
