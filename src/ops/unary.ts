// unary: y = f(x) elementwise, f an entry of src/ops/activations.ts. The
// builder API of every entry (nn modules, F functions, torch functions) is
// made here from the table, so a new activation needs no code in this file.
import type { UnaryNode } from '../graph/ir.js';
import { Module } from '../graph/module.js';
import { callerSource } from '../graph/source.js';
import { tensorOps, Tensor } from '../graph/tensor.js';
import { currentTracer } from '../graph/tracer.js';
import { numberArith } from './expr.js';
import {
  ACTIVATIONS,
  actDef,
  actParams,
  describeAct,
  hasDy,
  type ActFunctionalName,
  type ActMethodName,
  type ActModuleName,
  type ActName,
  type ActParams,
} from './activations.js';
import * as K from '../codegen/cuda/kernels.js';
import type { OpDef } from './types.js';

/** Records y = fn(x) with the entry's parameters from PyTorch-style arguments. */
export function unaryOp(fn: string, x: Tensor, args: unknown[], call: string): Tensor {
  const t = currentTracer();
  if (!(x instanceof Tensor)) t.fail(call, `expects a tensor, got ${typeof x}`);
  let p: ActParams;
  try {
    p = actParams(fn, args, call);
  } catch (e) {
    return t.fail(call, (e as Error).message.replace(`${call}: `, ''));
  }
  return t.record({ op: 'unary', inputs: [x.id], shape: [...x.sampleShape], params: [], attrs: { fn: fn as ActName, p } });
}

/** y = x·scale + shift (scalar arithmetic on a tensor). */
export function affine(x: Tensor, scale: number, shift: number, call: string): Tensor {
  if (scale === 1 && shift === 0) return x;
  return unaryOp('affine', x, [scale, shift], call);
}

tensorOps.unary = unaryOp;

/** The entry's `nn` module class: constructor args are PyTorch's (positional or one options object, `inplace` allowed). */
function moduleClass(fn: string, name: string): new (...args: unknown[]) => Module {
  const cls = class extends Module {
    readonly args: unknown[];
    constructor(...args: unknown[]) {
      super();
      // checked now, so a bad argument names the line that wrote it
      actParams(fn, args, `nn.${name} at ${callerSource()}`);
      this.args = args;
    }
    forward(x: Tensor): Tensor {
      return unaryOp(fn, x, this.args, name);
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

type Fn = (x: Tensor, ...args: unknown[]) => Tensor;

function build(): {
  modules: Record<string, new (...args: unknown[]) => Module>;
  functions: Record<string, Fn>;
  methods: Record<string, Fn>;
} {
  const modules: Record<string, new (...args: unknown[]) => Module> = {};
  const functions: Record<string, Fn> = {};
  const methods: Record<string, Fn> = {};
  for (const [fn, d] of Object.entries(ACTIVATIONS)) {
    const e = d as { module?: string; functional?: string; method?: string; torch: string };
    if (e.module) modules[e.module] = moduleClass(fn, e.module);
    if (e.functional) functions[e.functional] = (x, ...args) => unaryOp(fn, x, args, `F.${e.functional}`);
    if (e.method) methods[e.method] = (x, ...args) => unaryOp(fn, x, args, `torch.${e.method}`);
  }
  return { modules, functions, methods };
}

const made = build();

type Ctor = new (...args: unknown[]) => Module;
/** nn.ReLU, nn.LeakyReLU, ... (one per entry of the table with a module name) */
export const activationModules = made.modules as Record<ActModuleName, Ctor>;
/** F.relu, F.leakyRelu, ... */
export const activationFunctions = made.functions as Record<ActFunctionalName, Fn>;
/** torch.relu, torch.tanh, torch.sigmoid */
export const activationMethods = made.methods as Record<ActMethodName, Fn>;

export const unary: OpDef<UnaryNode> = {
  forward(n, c) {
    const d = actDef(n.attrs.fn);
    const x = c.x[0];
    for (let i = 0; i < x.length; i++) c.out[i] = d.f(numberArith, x[i], n.attrs.p);
    return {};
  },
  backward(n, c) {
    const dx = c.dx(0);
    if (!dx) return;
    const d = actDef(n.attrs.fn);
    const x = c.x[0];
    for (let i = 0; i < x.length; i++) dx[i] += c.dout[i] * d.dx(numberArith, x[i], n.attrs.p);
  },
  cpu: {
    plan(g, c) {
      const n = g.head;
      const N = c.shape(n.id).reduce((a, b) => a * b, 1);
      const label = describeAct(n.attrs.fn, n.attrs.p);
      const act = c.act(n);
      c.forward(g, {
        kernel: c.kernel({
          kind: 'act_fwd',
          fn: 'tk::act_fwd',
          consts: [
            ['N', N],
            ['ACT', act],
          ],
          params: [
            ['float*', 'out'],
            ['const float*', 'x'],
          ],
          scratch: '0',
          doc: [`${label} on [B, ${N}]`],
        }),
        args: [c.val(n.id), c.val(n.inputs[0])],
      });
      const x = n.inputs[0];
      if (!c.needsGrad(x)) return undefined;
      // the derivative from the output when it determines it (y is stored anyway), else from the input
      const fromY = hasDy(n.attrs.fn, n.attrs.p);
      return () => {
        const d = c.contrib(x);
        const kernel = c.kernel({
          kind: 'act_bwd',
          fn: 'tk::act_bwd',
          consts: [
            ['N', N],
            ['ACT', act],
            ['FROM_Y', String(fromY)],
            ['ACCUM', String(d.accum)],
          ],
          params: [
            ['float*', 'dx'],
            ['const float*', 'gy'],
            ['const float*', 'v'],
          ],
          scratch: '0',
          doc: [`backward of ${label} on [B, ${N}]`],
        });
        return [...d.before, c.call(g, { kernel, args: [d.arg, c.gout(g), c.val(fromY ? n.id : x)] })];
      };
    },
  },
  cuda: {
    forward(g, c, train) {
      const n = g.head;
      const N = c.graph.nodes[n.id].shape.reduce((a, b) => a * b, 1);
      const k = c.kernel(K.actFwd(n.attrs, N));
      return [c.launch(k, `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [c.val(n.inputs[0], train), c.val(n.id, train), 'B'])];
    },
    backward(g, c, gout) {
      const n = g.head;
      const x = n.inputs[0];
      if (!c.need(x)) return [];
      const N = c.graph.nodes[n.id].shape.reduce((a, b) => a * b, 1);
      const fromY = hasDy(n.attrs.fn, n.attrs.p);
      const { out, base } = c.contrib(x);
      const k = c.kernel(K.actBwd(n.attrs, N, fromY));
      return [c.launch(k, `dim3(tk_cdiv(B * ${N}, ${K.THREADS}))`, [gout, c.val(fromY ? n.id : x, true), base ?? 'nullptr', out, 'B'])];
    },
  },
};
