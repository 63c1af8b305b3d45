// `gen`: the tensorkiln command line. Each verb lives in its own file and registers itself.
import { Command } from 'commander';
import { register as check } from './check.js';
import { register as convert } from './convert.js';
import { register as inspect } from './inspect.js';
import { register as build } from './build.js';
import { register as train } from './train.js';

const program = new Command('gen')
  .description('tensorkiln: compile PyTorch-style CNNs written in TypeScript into verified C++/CUDA kernels')
  .showHelpAfterError();

for (const verb of [inspect, check, convert, train, build]) verb(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`gen: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
