// `gen`: the tensorkiln command line. Each verb lives in its own file and registers
// itself; only the verb being run is loaded (start-up time), every verb for the overview.
import fs from 'node:fs';
import { Command, CommanderError } from 'commander';
import { allExamples } from './help.js';

type Verb = () => Promise<{ register(program: Command): void }>;
const workflow: Verb = () => import('./train.js');
const gradients: Verb = () => import('./attack.js');
const verbs: Record<string, Verb> = {
  inspect: () => import('./inspect.js'),
  graph: () => import('./graph.js'),
  build: () => import('./build.js'),
  train: workflow,
  eval: workflow,
  predict: workflow,
  check: () => import('./check.js'),
  convert: () => import('./convert.js'),
  show: () => import('./show.js'),
  compare: () => import('./compare.js'),
  saliency: gradients,
  attack: gradients,
};

const { version } = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const program = new Command('gen')
  .description('tensorkiln: compile PyTorch-style CNNs written in TypeScript into verified C++/CUDA kernels')
  .version(version, '-V, --version', 'print the tensorkiln version')
  .showHelpAfterError()
  // commander throws instead of exiting (help, usage errors), so that only model code can exit early
  .exitOverride();

const verb = process.argv.slice(2).find((a) => !a.startsWith('-'));
const wanted = verb !== undefined && Object.hasOwn(verbs, verb) ? [verbs[verb]] : [...new Set(Object.values(verbs))];
for (const v of await Promise.all(wanted.map((load) => load()))) v.register(program);
program.addHelpText(
  'after',
  `\nExamples (gen <verb> --help for a verb's options):\n${allExamples()
    .map((l) => `  $ ${l}`)
    .join('\n')}`,
);

// model.ts is code run with the user's rights: should it end the process
// (process.exit(0) in a constructor or forward), gen must not look successful.
let finished = false;
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.stderr.write(`gen: the process exited before '${process.argv[2] ?? ''}' finished (did model code call process.exit?)\n`);
  process.exitCode = 1;
});

program
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    if (e instanceof CommanderError)
      process.exitCode = e.exitCode; // commander printed it
    else {
      process.stderr.write(`gen: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    }
  })
  .finally(() => {
    finished = true;
  });
