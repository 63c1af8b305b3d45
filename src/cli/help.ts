// Help text and terminal output shared by the verbs.
import type { Command } from 'commander';

const examples: string[] = [];

/** Adds "Example:" lines to a verb's help; `gen --help` lists the first of each verb. */
export function example(cmd: Command, ...lines: string[]): Command {
  examples.push(lines[0]);
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}`);
}

export function allExamples(): string[] {
  return [...examples];
}

/** Whether `stream` is a terminal that takes escape codes: not redirected, and neither NO_COLOR nor TERM=dumb. */
export function redraws(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}
