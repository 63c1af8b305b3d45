// Options shared by every verb that takes a model.
import type { Command } from 'commander';
import { loadModelExport, parseArgs, parseInputShape } from '../graph/load.js';
import { trace, declaredInput } from '../graph/trace.js';
import type { Module } from '../graph/module.js';
import type { Graph } from '../graph/ir.js';

export interface ModelOptions {
  /** the exported model; optional when the file exports exactly one */
  model?: string;
  input?: string;
  args?: string;
}

export function modelOptions(cmd: Command): Command {
  return cmd
    .option('--model <Name>', 'exported nn.Module class or instance to use (default: the only one the file exports)')
    .option('--input <C,H,W>', "input shape per sample (default: the model's static inputShape, else 3,32,32)")
    .option('--args <json>', 'constructor arguments as JSON, e.g. \'{"nBlocks":100}\'');
}

/** Loads and traces the model; `o.model` is set to the export it picked. */
export async function modelFrom(file: string, o: ModelOptions): Promise<{ model: Module; graph: Graph; name: string }> {
  const { model, name } = await loadModelExport(file, o.model, parseArgs(o.args));
  o.model = name;
  const graph = trace(model, parseInputShape(o.input) ?? declaredInput(model));
  return { model, graph, name };
}
