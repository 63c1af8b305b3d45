// Options shared by every verb that takes a model.
import type { Command } from 'commander';
import { loadModel, parseArgs, parseInputShape } from '../graph/load.js';
import { trace, declaredInput } from '../graph/trace.js';
import type { Module } from '../graph/module.js';
import type { Graph } from '../graph/ir.js';

export interface ModelOptions {
  model: string;
  input?: string;
  args?: string;
}

export function modelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model <Name>', 'exported nn.Module class to use')
    .option('--input <C,H,W>', "input shape per sample (default: the model's static inputShape, else 3,32,32)")
    .option('--args <json>', 'constructor arguments as JSON, e.g. \'{"nBlocks":100}\'');
}

export async function modelFrom(file: string, o: ModelOptions): Promise<{ model: Module; graph: Graph }> {
  const model = await loadModel(file, o.model, parseArgs(o.args));
  const graph = trace(model, parseInputShape(o.input) ?? declaredInput(model));
  return { model, graph };
}
