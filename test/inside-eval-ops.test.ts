// Eval-mode input gradients of every op-matrix and zoo model on the compiled
// backends equal the interpreter's (which golden-inside checks against PyTorch):
// the eval-mode backward kernels (BatchNorm with its running statistics, dropout
// the identity, a pool's argmax kept in eval forwards) for every op and option,
// with running statistics set off 0 and 1 so BatchNorm is not near the identity.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { zooModels } from '../models/zoo.js';
import type { CaseJson } from '../src/check/golden.js';
import { GOLDEN_TOLERANCES, caseStepOptions, listGoldenCases } from '../src/check/golden.js';
import { compareTensor } from '../src/check/compare.js';
import type { HostTensor } from '../src/graph/ir.js';
import { camelArgs } from '../src/graph/load.js';
import type { Module } from '../src/graph/module.js';
import { canonicalState } from '../src/graph/state.js';
import { trace } from '../src/graph/trace.js';
import { Interpreter } from '../src/interp/index.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { Rng } from '../src/util/rng.js';
import { opModels } from './fixtures/op-models.js';
import { factories } from './helpers/golden-matrix.js';

const fixtures = path.resolve(import.meta.dirname, 'fixtures');
const models = { ...opModels, ...zooModels } as unknown as Record<string, new (a: never) => Module>;
const cases = ['golden-ops', 'golden-zoo'].flatMap((f) =>
  listGoldenCases(path.join(fixtures, f))
    .filter((d) => (JSON.parse(fs.readFileSync(path.join(d, 'case.json'), 'utf8')) as CaseJson).grad_input === true)
    .map((d) => [path.basename(d), d] as const),
);

/** The case's graph and weights, BatchNorm's running statistics moved to mean ~N(0, 0.5), var in [0.5, 2). */
function setup(dir: string) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) as CaseJson;
  const io = loadSafetensors(path.join(dir, 'io.safetensors')).tensors;
  const x = io.get('x')!;
  const graph = trace(new models[json.model](camelArgs(json.args ?? {}) as never), x.shape.slice(1));
  const weights = loadSafetensors(path.join(dir, 'weights.safetensors')).tensors as Map<string, HostTensor>;
  const state = canonicalState(graph, weights, dir);
  const rng = new Rng(5);
  for (const [k, t] of state) {
    if (k.endsWith('running_mean')) t.data = Float32Array.from(t.data as Float32Array, () => 0.5 * rng.normal());
    if (k.endsWith('running_var')) t.data = Float32Array.from(t.data as Float32Array, () => 0.5 + 1.5 * rng.uniform());
  }
  const labels = Int32Array.from(io.get('labels')!.data as BigInt64Array, Number);
  const loss = json.train ? caseStepOptions(json).loss : undefined;
  return { graph, state, x: x.data as Float32Array, batch: x.shape[0], labels, loss };
}

describe('eval-mode input gradients of the op matrix and the zoo equal the interpreter', () => {
  it('has the cases', () => expect(cases.length).toBeGreaterThanOrEqual(50));
  describe.each(['cpu', 'cuda-emu'])('%s', (backend) => {
    it.each(cases)('%s', async (_name, dir) => {
      const { graph, state, x, batch, labels, loss } = setup(dir);
      const ref = new Interpreter(graph);
      ref.loadState(state);
      const want = ref.inputGradient(x, labels, batch, { train: false, loss });
      const b = await factories[backend](graph, { inputGrad: true, taps: [] });
      try {
        b.loadState(state);
        const got = b.inputGradient!(x, labels, batch, { train: false, loss });
        const g = compareTensor('grad_input_eval', Array.from(got.grad), Array.from(want.grad), GOLDEN_TOLERANCES.grad);
        expect(g.pass, `worst ${g.worstAbs} at ${g.worstIndex} (ratio ${g.ratio})`).toBe(true);
        expect(compareTensor('loss_eval', [got.loss], [want.loss], GOLDEN_TOLERANCES.logits).pass).toBe(true);
        // not vacuous: the gradient reaches the input
        expect(want.grad.some((v) => v !== 0)).toBe(true);
      } finally {
        b.dispose?.();
      }
    });
  });
});
