import { formatShape } from './ir.js';

/** A mistake in the model definition, found while tracing. Names the module, op and line. */
export class ModelError extends Error {
  constructor(
    readonly module: string,
    readonly op: string,
    readonly source: string,
    problem: string,
    hint?: string,
  ) {
    const where = module ? `${module} (${op})` : op;
    super(`${where} at ${source}: ${problem}${hint ? `\n  hint: ${hint}` : ''}`);
    this.name = 'ModelError';
  }
}

export const showShape = (s: readonly number[]) => formatShape(s);
