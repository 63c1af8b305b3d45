// The op registry: one entry per IR op kind (src/graph/ir.ts), each from its
// own file. The mapped type makes it exhaustive: an op without an entry, or
// an entry without a CPU or CUDA renderer, does not compile.
import type { InputNode, Node, NodeOf, OpKind } from '../graph/ir.js';
import { batchnorm } from './batchnorm.js';
import { binary } from './binary.js';
import { concat } from './concat.js';
import { conv2d } from './conv2d.js';
import { dropoutDef } from './dropout.js';
import { linear } from './linear.js';
import { avgpool2d, maxpool2d } from './pool.js';
import { reshape } from './reshape.js';
import { softmax } from './softmax.js';
import type { OpDef } from './types.js';
import { unary } from './unary.js';

const notAnOp = (): never => {
  throw new Error('internal: the model input is not computed by an op');
};

/** The model input: every backend binds it to the caller's array. */
const input: OpDef<InputNode> = {
  forward: notAnOp,
  backward: notAnOp,
  cpu: { plan: notAnOp },
  cuda: { forward: notAnOp, backward: notAnOp },
};

export const OPS: { [K in OpKind]: OpDef<NodeOf<K>> } = {
  input,
  conv2d,
  linear,
  maxpool2d,
  avgpool2d,
  batchnorm,
  dropout: dropoutDef,
  unary,
  binary,
  concat,
  reshape,
  softmax,
};

/** The registry entry of a node, typed for it. */
export function opOf<N extends Node>(n: N): OpDef<N> {
  const d = (OPS as Record<string, OpDef<Node> | undefined>)[n.op];
  if (!d) throw new Error(`no op '${n.op}' in the registry (node ${n.id}, ${n.module || 'model'} at ${n.source})`);
  return d as unknown as OpDef<N>;
}
