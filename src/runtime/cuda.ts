// Loading a CUDA package (generated/<name>/cuda/, or cuda-emu/ built for the CPU
// emulator) into Node. Without a GPU or driver the package's constructor throws a
// JS error that names the cause; nothing aborts.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CudaModel } from './index.js';

export interface CudaLoadOptions {
  /** CUDA device index (default 0) */
  device?: number;
  /** base seed of dropout masks */
  seed?: number;
  /** largest batch the caller will use; must not exceed the package's */
  maxBatch?: number;
}

/** Loads a built CUDA package folder and creates its model on the device. */
export async function loadCuda(dir: string, o: CudaLoadOptions = {}): Promise<CudaModel> {
  const abs = path.resolve(dir);
  if (!fs.existsSync(path.join(abs, 'index.js')))
    throw new Error(`${dir} is not a CUDA package (no index.js); create it with gen build --backend cuda`);
  const pkg = (await import(pathToFileURL(path.join(abs, 'index.js')).href)) as {
    create(o: CudaLoadOptions & { weights: null }): CudaModel;
  };
  // weights: null, as the callers load a state next (a CUDA build may have no build/init.safetensors)
  return pkg.create({ device: o.device, seed: o.seed, maxBatch: o.maxBatch, weights: null });
}
