// The generated package's index.d.ts, built with ts-morph: the typed surface
// of index.js, with the model's shapes in the doc comments.
import { Project, Scope, StructureKind, VariableDeclarationKind } from 'ts-morph';
import type { Graph } from '../graph/ir.js';

/** `cuda`: the CUDA package's wrapper (device instead of threads, no CPU feature check). */
export function emitDts(graph: Graph, prefix: string, version: string, cuda = false): string {
  const [C, H, W] = graph.inputShape;
  const K = graph.nodes[graph.output].shape[0];
  const inShape = `[batch, ${C}, ${H}, ${W}]`;
  const per = C * H * W;
  const ctorOptions = cuda ? '{ device?: number; maxBatch?: number; seed?: number }' : '{ maxBatch?: number; seed?: number }';
  const project = new Project({ useInMemoryFileSystem: true });
  const f = project.createSourceFile('index.d.ts', '', { overwrite: true });
  f.addStatements([
    `// ${prefix} — types of the compiled model ${graph.name} (tensorkiln codegen ${version}). Generated file: do not edit.`,
  ]);
  f.addInterface({
    name: 'SgdOptions',
    isExported: true,
    docs: ['torch.optim.SGD (dampening 0, no Nesterov) and penalties added to the loss: l1·Σ|p| + l2·Σp² over all parameters.'],
    properties: [
      { name: 'lr', type: 'number', docs: ['learning rate (finite)'] },
      { name: 'momentum', type: 'number', hasQuestionToken: true },
      { name: 'weightDecay', type: 'number', hasQuestionToken: true, docs: ['applied to every parameter, biases included'] },
      { name: 'l1', type: 'number', hasQuestionToken: true },
      { name: 'l2', type: 'number', hasQuestionToken: true },
    ],
  });
  f.addInterface({
    name: 'StateTensor',
    isExported: true,
    properties: [
      { name: 'dtype', type: `'F32' | 'I64'` },
      { name: 'shape', type: 'number[]' },
      { name: 'data', type: 'Float32Array | BigInt64Array' },
    ],
  });
  f.addInterface({
    name: 'StateInfo',
    isExported: true,
    properties: [
      { name: 'name', type: 'string' },
      { name: 'kind', type: `'param' | 'buffer'` },
      { name: 'dtype', type: `'F32' | 'I64'` },
      { name: 'shape', type: 'number[]' },
    ],
  });
  f.addVariableStatement({
    isExported: true,
    hasDeclareKeyword: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['Shapes and names of the model.'],
    declarations: [
      {
        name: 'info',
        type: `{ readonly model: string; readonly name: string; readonly prefix: string; readonly inputShape: [${C}, ${H}, ${W}]; readonly classes: ${K}; readonly maxBatch: number; readonly state: readonly StateInfo[]; readonly keys: Readonly<Record<string, string>> }`,
      },
    ],
  });
  if (!cuda)
    f.addFunction({
      name: 'cpuFlags',
      isExported: true,
      hasDeclareKeyword: true,
      returnType: 'Set<string> | null',
      docs: ['CPU feature flags of this machine (/proc/cpuinfo).'],
    });
  f.addFunction({
    name: 'checkBuild',
    isExported: true,
    hasDeclareKeyword: true,
    parameters: [{ name: 'dir', type: 'string', hasQuestionToken: true }],
    returnType: '{ addonPath: string; manifest: unknown }',
    docs: [cuda ? 'Throws if there is no build.' : 'Throws if there is no build, or if it was compiled for instructions this CPU lacks.'],
  });
  f.addClass({
    name: 'Model',
    isExported: true,
    hasDeclareKeyword: true,
    docs: [
      `${graph.name} compiled for ${cuda ? 'CUDA (state and data on the GPU)' : 'the CPU'}. Input x ${inShape} float32 (NCHW, batch × ${per} values), output logits [batch, ${K}].`,
    ],
    ctors: [
      cuda
        ? {
            parameters: [{ name: 'options', type: ctorOptions, hasQuestionToken: true }],
            docs: ['device: CUDA device index (default 0); seed is the dropout base seed. Throws when there is no usable GPU.'],
          }
        : {
            parameters: [{ name: 'options', type: ctorOptions, hasQuestionToken: true }],
            docs: ['maxBatch bounds every batch (default info.maxBatch); seed is the dropout base seed.'],
          },
    ],
    properties: [
      { name: 'seed', type: 'number', docs: ['Base seed of the dropout masks: training step s uses stepSeed(s).'] },
      { name: 'step', type: 'number', docs: ['Training steps taken so far.'] },
      { name: 'lastCorrect', type: 'number', hasQuestionToken: true, docs: ['Correct predictions of the last trainStep.'] },
    ],
    getAccessors: [
      { name: 'maxBatch', returnType: 'number', scope: Scope.Public },
      { name: 'training', returnType: 'boolean' },
      ...(cuda
        ? [
            { name: 'device', returnType: 'string', docs: ['Name of the GPU.'] },
            { name: 'emulator', returnType: 'boolean', docs: ['Whether the kernels run on the CPU emulator.'] },
          ]
        : [{ name: 'numThreads', returnType: 'number' }]),
    ],
    setAccessors: [
      cuda
        ? { name: 'graphs', parameters: [{ name: 'on', type: 'boolean' }], docs: ['Replay training steps from CUDA graphs (default on).'] }
        : { name: 'numThreads', parameters: [{ name: 'n', type: 'number' }] },
    ],
    methods: [
      {
        name: 'train',
        parameters: [{ name: 'mode', type: 'boolean', hasQuestionToken: true }],
        returnType: 'this',
        docs: ['Train mode (BatchNorm batch statistics, dropout on), as PyTorch.'],
      },
      { name: 'eval', returnType: 'this', docs: ['Eval mode (BatchNorm running statistics, dropout off).'] },
      {
        name: 'stepSeed',
        parameters: [{ name: 'step', type: 'number', hasQuestionToken: true }],
        returnType: 'number',
        docs: ['Dropout seed of a training step.'],
      },
      {
        name: 'forward',
        parameters: [
          { name: 'x', type: 'Float32Array' },
          { name: 'batch', type: 'number' },
          { name: 'seed', type: 'number', hasQuestionToken: true },
        ],
        returnType: 'Float32Array',
        docs: [
          `Logits [batch, ${K}] of x ${inShape}. In train mode BatchNorm updates its running statistics, as PyTorch, and dropout uses seed (default stepSeed()).`,
        ],
      },
      {
        name: 'trainStep',
        parameters: [
          { name: 'x', type: 'Float32Array' },
          { name: 'labels', type: 'Int32Array' },
          { name: 'batch', type: 'number' },
          { name: 'opts', type: 'SgdOptions' },
        ],
        returnType: 'number',
        docs: [`One SGD step on x ${inShape}, labels [batch] in [0, ${K}); returns the loss (mean cross-entropy + penalties).`],
      },
      {
        name: 'trainStepDetailed',
        parameters: [
          { name: 'x', type: 'Float32Array' },
          { name: 'labels', type: 'Int32Array' },
          { name: 'batch', type: 'number' },
          { name: 'opts', type: 'SgdOptions' },
          { name: 'seed', type: 'number', hasQuestionToken: true },
        ],
        returnType: '{ loss: number; lossCE: number; correct: number; logits: Float32Array }',
        docs: [`As trainStep, also returning the train-mode logits [batch, ${K}]; seed overrides the dropout seed.`],
      },
      {
        name: 'trainEpoch',
        parameters: [
          { name: 'x', type: 'Float32Array' },
          { name: 'labels', type: 'Int32Array' },
          { name: 'n', type: 'number' },
          { name: 'batchSize', type: 'number' },
          { name: 'order', type: 'Uint32Array' },
          { name: 'opts', type: 'SgdOptions' },
        ],
        returnType: '{ loss: number; correct: number; steps: number }',
        docs: [
          `Every step of an epoch in one native call: x [n, ${C}, ${H}, ${W}], labels [n], batches of order[] (indices < n; the last batch may be smaller). loss is the sum of the step losses.`,
        ],
      },
      ...(cuda
        ? [
            {
              name: 'setDataset',
              parameters: [
                { name: 'x', type: 'Float32Array' },
                { name: 'labels', type: 'Int32Array' },
                { name: 'n', type: 'number', hasQuestionToken: true },
              ],
              returnType: 'void',
              docs: [
                'Uploads the dataset to the GPU now. trainEpoch uploads by itself when given another array or n (or when 4096 sampled values differ); after changing the same array in place, call this.',
              ],
            },
          ]
        : []),
      {
        name: 'trainingState',
        returnType: 'Map<string, StateTensor>',
        docs: [`Optimiser and dropout-step state: 'step' and 'momentum.<param>'.`],
      },
      { name: 'loadTrainingState', parameters: [{ name: 'state', type: 'Map<string, StateTensor>' }], returnType: 'void' },
      { name: 'resetOptimizer', returnType: 'void', docs: ['Forget the momentum buffers.'] },
      { name: 'stateDict', returnType: 'Map<string, StateTensor>', docs: ['Copies of every state_dict entry under PyTorch names.'] },
      {
        name: 'loadStateDict',
        parameters: [{ name: 'state', type: 'Map<string, StateTensor> | Record<string, StateTensor>' }],
        returnType: 'void',
        docs: ['Strict load by PyTorch names.'],
      },
      {
        name: 'loadState',
        parameters: [{ name: 'state', type: 'Map<string, StateTensor> | Record<string, StateTensor>' }],
        returnType: 'void',
        docs: ['Sets the given entries (state_dict keys or canonical names).'],
      },
      { name: 'canonicalState', returnType: 'Map<string, StateTensor>', docs: ['Every parameter and buffer once, by canonical name.'] },
      { name: 'grads', returnType: 'Map<string, Float32Array>', docs: ['Parameter gradients of the last train step.'] },
      {
        name: 'inputGrad',
        returnType: 'Float32Array',
        docs: ['d loss / d x of the last train step, [batch, C, H, W] (packages built with input gradients; otherwise throws).'],
      },
    ],
  });
  f.addFunction({
    name: 'create',
    isExported: true,
    hasDeclareKeyword: true,
    parameters: [{ name: 'options', type: ctorOptions, hasQuestionToken: true }],
    returnType: 'Model',
  });
  void StructureKind;
  f.formatText({ indentSize: 2 });
  return f.getFullText();
}
