// `gen convert`: turn PyTorch weights into the safetensors that tensorkiln
// reads. A .pt/.pth state_dict (zip or legacy) or a safetensors file goes in;
// a safetensors file comes out with float tensors as F32 (what the kernels
// use), integer tensors as they were (num_batches_tracked stays I64), the
// input's metadata kept and a note of where it came from.

import * as path from 'node:path';
import { readSafetensors, saveSafetensors, toFloat32, type Tensor } from './safetensors.js';
import { readTorchPt, type TorchPtOptions } from './torch-pt.js';
import { readRegularFile } from '../util/fs.js';
import { MAX_WEIGHTS_FILE_BYTES } from './limits.js';
import { isZip } from './zip.js';

export interface ConvertOptions extends TorchPtOptions {
  /** Keep F64 tensors as F64 instead of narrowing them to F32. */
  keepF64?: boolean;
  /** Extra metadata for the output (wins over the input's). */
  metadata?: Record<string, string>;
  /** Drop tensors under these name prefixes (e.g. a checkpoint's optimiser state, 'train.'). */
  dropPrefixes?: string[];
}

export interface ConvertResult {
  format: 'pt' | 'safetensors';
  tensors: number;
  /** Names of the tensors narrowed from F64 to F32. */
  narrowed: string[];
  metadata: Record<string, string>;
}

function looksLikeSafetensors(bytes: Uint8Array): boolean {
  // u64 header length, then the JSON header's opening brace
  return bytes.length >= 9 && bytes[8] === 0x7b && bytes[6] === 0 && bytes[7] === 0;
}

/** Read weights from a .pt/.pth or .safetensors file, judged by content first, extension second. */
export function readWeights(
  file: string,
  bytes: Uint8Array,
  opts: TorchPtOptions = {},
): { format: ConvertResult['format']; tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const ext = path.extname(file).toLowerCase();
  if (!isZip(bytes) && (looksLikeSafetensors(bytes) || ext === '.safetensors')) {
    const { tensors, metadata } = readSafetensors(bytes, file);
    return { format: 'safetensors', tensors, metadata };
  }
  return { format: 'pt', tensors: readTorchPt(bytes, file, opts), metadata: {} };
}

/** Convert `inPath` (.pt, .pth or .safetensors) to safetensors at `outPath`, atomically. */
export function convertFile(inPath: string, outPath: string, opts: ConvertOptions = {}): ConvertResult {
  const input = readWeights(inPath, readRegularFile(inPath, 'weights file', MAX_WEIGHTS_FILE_BYTES), opts);
  const narrowed: string[] = [];
  const out = new Map<string, Tensor>();
  for (const [name, t] of input.tensors) {
    if (opts.dropPrefixes?.some((p) => name.startsWith(p))) continue;
    if (t.dtype === 'F64' && !opts.keepF64) {
      narrowed.push(name);
      out.set(name, toFloat32(t));
    } else {
      out.set(name, t);
    }
  }
  const metadata = {
    ...input.metadata,
    converted_from: path.basename(inPath),
    source_format: input.format === 'pt' ? 'pytorch' : 'safetensors',
    ...opts.metadata,
  };
  saveSafetensors(outPath, out, metadata);
  return { format: input.format, tensors: out.size, narrowed, metadata };
}
