// `gen`: the tensorkiln command line. Each verb lives in its own file and registers
// itself; only the verb being run is loaded (start-up time), every verb for the overview.
import fs from 'node:fs';
import { Command } from 'commander';
import { allExamples } from './help.js';

type Verb = () => Promise<{ register(program: Command): void }>;
const workflow: Verb = () => import('./train.js');
const verbs: Record<string, Verb> = {
  inspect: () => import('./inspect.js'),
  build: () => import('./build.js'),
  train: workflow,
  eval: workflow,
  predict: workflow,
  check: () => import('./check.js'),
  convert: () => import('./convert.js'),
};

const { version } = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const program = new Command('gen')
  .description('tensorkiln: compile PyTorch-style CNNs written in TypeScript into verified C++/CUDA kernels')
  .version(version, '-V, --version', 'print the tensorkiln version')
  .showHelpAfterError();

const verb = process.argv.slice(2).find((a) => !a.startsWith('-'));
const wanted = verb !== undefined && Object.hasOwn(verbs, verb) ? [verbs[verb]] : [...new Set(Object.values(verbs))];
for (const v of await Promise.all(wanted.map((load) => load()))) v.register(program);
program.addHelpText(
  'after',
  `\nExamples (gen <verb> --help for a verb's options):\n${allExamples()
    .map((l) => `  $ ${l}`)
    .join('\n')}`,
);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`gen: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
