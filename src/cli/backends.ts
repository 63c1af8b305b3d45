// Backends `gen check --backend` can run a golden case on.
import type { BackendFactory } from '../check/backend.js';
import { Interpreter } from '../interp/index.js';

const factories: Record<string, () => Promise<BackendFactory>> = {
  interp: async () => (graph) => new Interpreter(graph),
  cpu: async () => {
    const { compiledBackend } = await import('../runtime/backend.js');
    return (graph, needs) => compiledBackend(graph, { inputGrad: needs?.inputGrad, taps: needs?.taps });
  },
  cuda: async () => {
    const { cudaBackend } = await import('../runtime/backend.js');
    return (graph, needs) => cudaBackend(graph, { inputGrad: needs?.inputGrad, taps: needs?.taps });
  },
  'cuda-emu': async () => {
    const { cudaBackend } = await import('../runtime/backend.js');
    return (graph, needs) => cudaBackend(graph, { emulator: true, inputGrad: needs?.inputGrad, taps: needs?.taps });
  },
};

export async function backendFactory(name: string): Promise<BackendFactory> {
  const make = factories[name];
  if (!make) throw new Error(`unknown backend '${name}'; available: ${Object.keys(factories).join(', ')}`);
  return make();
}
