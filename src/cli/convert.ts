// gen convert: move weights between PyTorch (.pt state_dict) and safetensors.
import type { Command } from 'commander';
import { convertFile } from '../io/convert.js';
import { example } from './help.js';

export function register(program: Command): void {
  example(
    program
      .command('convert <in> <out>')
      .description(
        'convert a PyTorch .pt state_dict or a checkpoint into a safetensors state_dict (loadable by safetensors.torch.load_file)',
      ),
    'gen convert net.pt net.safetensors',
  )
    .option('--keep-training-state', "keep a checkpoint's optimiser state (train.* tensors); PyTorch's load_state_dict would reject them")
    .option('--keep-f64', 'keep F64 tensors instead of narrowing them to F32')
    .action((input: string, out: string, o: { keepTrainingState?: boolean; keepF64?: boolean }) => {
      const r = convertFile(input, out, { keepF64: o.keepF64, dropPrefixes: o.keepTrainingState ? [] : ['train.'] });
      process.stdout.write(
        `${input} (${r.format}) -> ${out}: ${r.tensors} tensors${r.narrowed.length ? `, ${r.narrowed.length} narrowed F64->F32` : ''}\n`,
      );
    });
}
