// From a traced Graph to an execution plan for the code generators:
//   1. fusion: group nodes into kernels (conv+bias+act(+maxpool), bn+act(+add), linear+act, ...);
//   2. autodiff: the backward step of every group, with gradient accumulation
//      decided statically (the first contribution writes, later ones add);
//   3. kernel deduplication: kernels are keyed by their signature (op kind and
//      shapes), so repeated blocks share one kernel;
//   4. a static memory plan: every batch-sized buffer gets an offset in one
//      arena, buffers whose lifetimes do not overlap share space.
// The plan is backend-neutral data; emit_cpu.ts renders it as C++.
import {
  numel,
  type BatchNormNode,
  type Conv2dNode,
  type DropoutNode,
  type Graph,
  type LinearNode,
  type Node,
  type PoolNode,
} from '../graph/ir.js';

export type ActKind = 'none' | 'relu' | 'tanh';

/** A call argument: a batch-sized arena buffer, a slot of the cross-thread reduction area, or a fixed C expression. */
export type Arg = { buf: string } | { red: number } | { expr: string };

export interface Kernel {
  /** index in Plan.kernels; the C function is `k<id>_<kind>` */
  id: number;
  kind: string;
  /** C++ template function in tk_runtime.h */
  fn: string;
  /** constexpr constants, in template-argument order */
  consts: [string, string | number][];
  /** C parameters after the context */
  params: [string, string][];
  /** per-thread scratch floats, a C++ expression (may use `mb`, the max batch) */
  scratch: string;
  /** doc lines: what it computes, first use */
  doc: string[];
  signature: string;
}

export interface Call {
  kernel: Kernel;
  args: Arg[];
  comment: string;
  /** C guard: the call runs only when this holds (e.g. train-mode variants) */
  when?: string;
  /** all threads must be past the previous calls first (its output reuses memory laid out differently) */
  barrier?: boolean;
}

export interface Buffer {
  name: string;
  /** bytes per sample (rounded to 64), the arena holds maxBatch samples */
  bytes: number;
  elem: 'float' | 'uint8_t';
  first: number;
  last: number;
  /** bytes per sample from the arena start (the address is offset × max batch) */
  offset: number;
}

export interface ParamInfo {
  name: string;
  /** index in Graph.state */
  index: number;
  numel: number;
  /** offset in the flat parameter array */
  offset: number;
  /** conv weights/biases keep VW-lane partial gradients per thread */
  vec: boolean;
}

export interface BufferStateInfo {
  name: string;
  index: number;
  numel: number;
  dtype: 'F32' | 'I64';
  offset: number;
}

export interface Plan {
  graph: Graph;
  kernels: Kernel[];
  forward: Call[];
  backward: Call[];
  loss: { logits: string; dlogits: string; classes: number; barrier: boolean };
  buffers: Buffer[];
  arenaBytesPerSample: number;
  params: ParamInfo[];
  paramFloats: number;
  fbuffers: BufferStateInfo[];
  ibuffers: BufferStateInfo[];
  /** doubles per thread for BatchNorm partial sums */
  redPerThread: number;
  inputNumel: number;
  classes: number;
  /** fused groups, for reports */
  groups: string[];
}

interface Group {
  kind: 'conv' | 'bn' | 'linear' | 'pool' | 'act' | 'add' | 'dropout' | 'reshape';
  head: Node;
  act: ActKind;
  actNode?: Node;
  pool?: PoolNode;
  /** residual add fused after a BatchNorm (+act) */
  add?: Node;
  skip?: number;
  out: number;
  nodes: Node[];
}

const ACT_C: Record<ActKind, string> = { none: 'tk::ACT_NONE', relu: 'tk::ACT_RELU', tanh: 'tk::ACT_TANH' };

function convFast(a: Conv2dNode['attrs']): boolean {
  return a.sh === 1 && a.sw === 1 && a.ph <= a.kh - 1 && a.pw <= a.kw - 1;
}

function isPool2(n: Node): n is PoolNode {
  return (
    n.op === 'maxpool2d' &&
    n.attrs.kh === 2 &&
    n.attrs.kw === 2 &&
    n.attrs.sh === 2 &&
    n.attrs.sw === 2 &&
    n.attrs.ph === 0 &&
    n.attrs.pw === 0
  );
}

function fmtShape(s: number[]): string {
  return `[B, ${s.join(', ')}]`;
}

function cfloat(x: number): string {
  const s = Number.isInteger(x) ? x.toFixed(1) : String(x);
  return `${s}f`;
}

export function plan(graph: Graph): Plan {
  const nodes = graph.nodes;
  const consumers = new Map<number, number[]>();
  for (const n of nodes) for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n.id]);
  consumers.set(graph.output, [...(consumers.get(graph.output) ?? []), -1]);
  const sole = (id: number): Node | undefined => {
    const c = consumers.get(id) ?? [];
    return c.length === 1 && c[0] >= 0 ? nodes[c[0]] : undefined;
  };

  // ---------------------------------------------------------------- fusion
  const groups: Group[] = [];
  const absorbed = new Set<number>();
  for (const n of nodes) {
    if (n.op === 'input' || absorbed.has(n.id)) continue;
    const g: Group = { kind: 'act', head: n, act: 'none', out: n.id, nodes: [n] };
    const take = (m: Node) => {
      absorbed.add(m.id);
      g.nodes.push(m);
      g.out = m.id;
    };
    const takeAct = () => {
      const m = sole(g.out);
      if (m && (m.op === 'relu' || m.op === 'tanh')) {
        g.act = m.op;
        g.actNode = m;
        take(m);
      }
    };
    switch (n.op) {
      case 'conv2d': {
        g.kind = 'conv';
        takeAct();
        const m = sole(g.out);
        if (m && convFast(n.attrs) && isPool2(m)) {
          g.pool = m;
          take(m);
        }
        break;
      }
      case 'batchnorm2d': {
        g.kind = 'bn';
        takeAct();
        const m = sole(g.out);
        const [, H, W] = n.shape;
        const skip = m && m.op === 'add' ? (m.inputs[0] === g.out ? m.inputs[1] : m.inputs[0]) : -1;
        // the kernel reads the other summand as it runs: it must be computed before this BatchNorm
        if (m && m.op === 'add' && g.act !== 'tanh' && m.inputs[0] !== m.inputs[1] && skip < n.id) {
          g.add = m;
          g.skip = skip;
          take(m);
        } else if (m && isPool2(m) && H % 2 === 0 && W % 2 === 0) {
          // the full-size activation is then never stored (forward) nor re-read (backward)
          g.pool = m;
          take(m);
        }
        break;
      }
      case 'linear':
        g.kind = 'linear';
        takeAct();
        break;
      case 'maxpool2d':
      case 'avgpool2d':
        g.kind = 'pool';
        break;
      case 'relu':
      case 'tanh':
        g.kind = 'act';
        g.act = n.op;
        break;
      case 'add':
        g.kind = 'add';
        break;
      case 'dropout':
        g.kind = 'dropout';
        break;
      case 'reshape':
        g.kind = 'reshape';
        break;
      default:
        // an op this planner does not know must stop the build, never compile to a copy
        return unsupported(n);
    }
    groups.push(g);
  }

  // ---------------------------------------------------------------- state layout
  const params: ParamInfo[] = [];
  const fbuffers: BufferStateInfo[] = [];
  const ibuffers: BufferStateInfo[] = [];
  const convParams = new Set<string>();
  for (const n of nodes) if (n.op === 'conv2d') for (const p of n.params) convParams.add(p);
  let pOff = 0;
  let fOff = 0;
  let iOff = 0;
  graph.state.forEach((s, index) => {
    const ne = numel(s.shape);
    if (s.kind === 'param') {
      params.push({ name: s.name, index, numel: ne, offset: pOff, vec: convParams.has(s.name) });
      pOff += ne;
    } else if (s.dtype === 'I64') {
      ibuffers.push({ name: s.name, index, numel: ne, dtype: 'I64', offset: iOff });
      iOff += ne;
    } else {
      fbuffers.push({ name: s.name, index, numel: ne, dtype: 'F32', offset: fOff });
      fOff += ne;
    }
  });
  const paramByName = new Map(params.map((p, i) => [p.name, i]));
  const P = (name: string) => `m->P + ${params[paramByName.get(name)!].offset}`;
  const GP = (name: string) => `c.gp + GPO(${paramByName.get(name)!})`;
  const FB = (name: string) => `m->FB + ${fbuffers.find((b) => b.name === name)!.offset}`;
  const IB = (name: string) => `m->IB + ${ibuffers.find((b) => b.name === name)!.offset}`;

  // ---------------------------------------------------------------- values and buffers
  const storage = new Map<number, number>(); // value id -> root value id (reshape aliases)
  const root = (v: number): number => storage.get(v) ?? v;
  const bufs = new Map<string, { bytes: number; elem: 'float' | 'uint8_t' }>();
  const valBuf = (v: number): Arg => {
    const r = root(v);
    if (r === 0) return { expr: 'x' };
    const name = `v${r}`;
    if (!bufs.has(name)) bufs.set(name, { bytes: numel(nodes[r].shape) * 4, elem: 'float' });
    return { buf: name };
  };
  const gradRoot = new Map<number, number>();
  const groot = (v: number): number => gradRoot.get(v) ?? v;
  const gradBuf = (v: number): Arg => {
    const r = groot(v);
    const name = `g${r}`;
    if (!bufs.has(name)) bufs.set(name, { bytes: numel(nodes[r].shape) * 4, elem: 'float' });
    return { buf: name };
  };
  const amBuf = (v: number): Arg => {
    const name = `am${v}`;
    if (!bufs.has(name)) bufs.set(name, { bytes: numel(nodes[v].shape), elem: 'uint8_t' });
    return { buf: name };
  };

  for (const g of groups)
    if (g.kind === 'reshape') {
      storage.set(g.out, root(g.head.inputs[0]));
      const c = consumers.get(g.head.inputs[0]) ?? [];
      if (c.length === 1) gradRoot.set(g.head.inputs[0], groot(g.out));
    }

  // requires grad: every value downstream of a parameter
  const rg = new Set<number>();
  for (const n of nodes) if (n.op !== 'input' && (n.params.length > 0 || n.inputs.some((i) => rg.has(i)))) rg.add(n.id);

  // ---------------------------------------------------------------- kernels (deduplicated)
  const kernels: Kernel[] = [];
  const bySig = new Map<string, Kernel>();
  const kernel = (
    kind: string,
    fn: string,
    consts: [string, string | number][],
    params: [string, string][],
    scratch: string,
    doc: string[],
  ): Kernel => {
    const signature = `${kind}<${consts.map((c) => c[1]).join(',')}>`;
    let k = bySig.get(signature);
    if (!k) {
      k = { id: kernels.length, kind, fn, consts, params, scratch, doc, signature };
      kernels.push(k);
      bySig.set(signature, k);
    }
    return k;
  };

  const where = (n: Node) => `${n.module || '(root)'} · ${n.source}`;
  const forward: Call[] = [];
  const backward: Call[] = [];
  let redDoubles = 0;
  const gradWritten = new Set<number>();
  /** whether a contribution to v's gradient must add (true) or may write (false) */
  const accum = (v: number): boolean => {
    const r = groot(v);
    const a = gradWritten.has(r);
    gradWritten.add(r);
    return a;
  };
  const describe: string[] = [];
  /** backward steps per group, created later in execution (reverse) order so accumulation flags are right */
  const bwd: (() => Call[])[] = [];

  for (const g of groups) {
    const n = g.head;
    const inShape = nodes[n.inputs[0]]?.shape ?? [];
    const outShape = nodes[g.out].shape;
    const ops = g.nodes.map((m) => m.op).join('+');
    describe.push(`${ops} ${fmtShape(inShape)} -> ${fmtShape(outShape)} (${where(n)})`);
    const comment = `${where(n)}: ${ops} ${fmtShape(inShape)} -> ${fmtShape(outShape)}`;
    switch (g.kind) {
      case 'conv': {
        const c = n as Conv2dNode;
        const a = c.attrs;
        const [, H, W] = inShape;
        const fast = convFast(a);
        const geo = `${a.inC}, ${a.outC}, ${H}, ${W}, ${a.kh}, ${a.kw}, ${a.ph}, ${a.pw}`;
        const scratch = fast ? `tk::ConvGeo<${geo}>::scratch_floats` : '0';
        const consts: [string, string | number][] = [
          ['CI', a.inC],
          ['CO', a.outC],
          ['H', H],
          ['W', W],
          ['KH', a.kh],
          ['KW', a.kw],
          ['SH', a.sh],
          ['SW', a.sw],
          ['PH', a.ph],
          ['PW', a.pw],
          ['ACT', ACT_C[g.act]],
          ['POOL', g.pool ? 'true' : 'false'],
        ];
        const doc = [
          `Conv2d ${a.inC}->${a.outC} ${a.kh}x${a.kw} stride ${a.sh},${a.sw} pad ${a.ph},${a.pw}${a.bias ? ' + bias' : ''}${g.act !== 'none' ? ` + ${g.act}` : ''}${g.pool ? ' + maxpool 2x2' : ''}`,
          `x ${fmtShape(inShape)} -> out ${fmtShape(outShape)}; weight [${a.outC}, ${a.inC}, ${a.kh}, ${a.kw}]`,
          `first use: ${where(n)}`,
        ];
        const kf = kernel(
          'conv_fwd',
          'tk::conv_fwd',
          consts,
          [
            ['float*', 'out'],
            ['uint8_t*', 'am'],
            ['const float*', 'x'],
            ['const float*', 'w'],
            ['const float*', 'b'],
          ],
          scratch,
          doc,
        );
        const am: Arg = g.pool ? amBuf(g.out) : { expr: 'nullptr' };
        forward.push({
          kernel: kf,
          args: [valBuf(g.out), am, valBuf(n.inputs[0]), { expr: P(n.params[0]) }, { expr: a.bias ? P(n.params[1]) : 'nullptr' }],
          comment,
        });
        const needDx = rg.has(n.inputs[0]);
        bwd.push(() => {
          const acc = needDx ? accum(n.inputs[0]) : false;
          const kb = kernel(
            'conv_bwd',
            'tk::conv_bwd',
            [...consts, ['NEED_DX', needDx ? 'true' : 'false'], ['ACCUM_DX', acc ? 'true' : 'false']],
            [
              ['float*', 'dx'],
              ['float*', 'gw'],
              ['float*', 'gb'],
              ['const float*', 'gy'],
              ['const float*', 'y'],
              ['const uint8_t*', 'am'],
              ['const float*', 'x'],
              ['const float*', 'w'],
            ],
            scratch,
            [`backward of: ${doc[0]}`, ...doc.slice(1)],
          );
          return [
            {
              kernel: kb,
              args: [
                needDx ? gradBuf(n.inputs[0]) : { expr: 'nullptr' },
                { expr: GP(n.params[0]) },
                { expr: a.bias ? GP(n.params[1]) : 'nullptr' },
                gradBuf(g.out),
                g.act !== 'none' ? valBuf(g.out) : { expr: 'nullptr' },
                am,
                valBuf(n.inputs[0]),
                { expr: P(n.params[0]) },
              ],
              comment,
            },
          ];
        });
        break;
      }
      case 'bn': {
        const b = n as BatchNormNode;
        const [C, H, W] = inShape;
        const [wN, bN, rm, rv, nbt] = b.params;
        const red = { fwd: redDoubles, bwd: redDoubles + 2 * C };
        redDoubles += 4 * C;
        const doc = [
          `BatchNorm2d(${C})${g.act !== 'none' ? ` + ${g.act}` : ''}${g.add ? ' + residual add' : ''}${g.pool ? ' + maxpool 2x2' : ''}`,
          `z ${fmtShape(inShape)} -> out ${fmtShape(outShape)}`,
          `first use: ${where(n)}`,
        ];
        const sc = `tk::BnScratch<${C}>::scratch_floats`;
        const eps = cfloat(b.attrs.eps);
        const mom = cfloat(b.attrs.momentum);
        const out = valBuf(g.out);
        const z = valBuf(n.inputs[0]);
        const w = { expr: P(wN) };
        const bias = { expr: P(bN) };
        const running = [{ expr: FB(rm) }, { expr: FB(rv) }];
        // false when nothing before the BatchNorm has parameters: only gamma and beta get gradients
        const needDz = rg.has(n.inputs[0]);
        const dz = (): Arg => (needDz ? gradBuf(n.inputs[0]) : { expr: 'nullptr' });
        // bn_* (+act, + residual add) and bn_pool_* (+act, + 2x2 max pool) take the same
        // arguments but one: the skip input / its gradient, or the pool's argmax
        const pooled = g.pool !== undefined;
        const fam = pooled ? 'bn_pool' : 'bn';
        const consts: [string, string | number][] = pooled
          ? [
              ['C', C],
              ['H', H],
              ['W', W],
              ['ACT', ACT_C[g.act]],
            ]
          : [
              ['C', C],
              ['HW', H * W],
              ['ACT', ACT_C[g.act]],
              ['ADD', g.add ? 'true' : 'false'],
            ];
        const fwdParams: [string, string][] = [
          ['float*', 'out'],
          ['const float*', 'z'],
          pooled ? ['uint8_t*', 'am'] : ['const float*', 'skip'],
          ['const float*', 'gamma'],
          ['const float*', 'beta'],
        ];
        const kt = kernel(
          `${fam}_fwd_train`,
          `tk::${fam}_fwd_train`,
          consts,
          [
            ...fwdParams,
            ['float*', 'rmean'],
            ['float*', 'rvar'],
            ['int64_t*', 'nbt'],
            ['double*', 'part'],
            ['float', 'momentum'],
            ['float', 'eps'],
          ],
          sc,
          [`train mode: ${doc[0]}`, ...doc.slice(1)],
        );
        const ke = kernel(
          `${fam}_fwd_eval`,
          `tk::${fam}_fwd_eval`,
          consts,
          [...fwdParams, ['const float*', 'rmean'], ['const float*', 'rvar'], ['float', 'eps']],
          sc,
          [`eval mode: ${doc[0]}`, ...doc.slice(1)],
        );
        const am = pooled ? amBuf(g.out) : undefined;
        const skip: Arg = g.add ? valBuf(g.skip!) : { expr: 'nullptr' };
        forward.push({
          kernel: kt,
          args: [out, z, am ?? skip, w, bias, ...running, { expr: IB(nbt) }, { red: red.fwd }, { expr: mom }, { expr: eps }],
          comment,
          when: 'c.train',
        });
        forward.push({
          kernel: ke,
          args: [out, z, am ? { expr: 'nullptr' } : skip, w, bias, ...running, { expr: eps }],
          comment,
          when: '!c.train',
        });
        // backward: the skip's gradient is written before z's (both inputs of the group)
        const needSkip = g.add !== undefined && rg.has(g.skip!);
        bwd.push(() => {
          const accSkip = needSkip ? accum(g.skip!) : false;
          const accZ = needDz && accum(n.inputs[0]);
          const flags: [string, string][] = [
            ['NEED_DZ', String(needDz)],
            ['ACCUM_DZ', String(accZ)],
          ];
          const bconsts: [string, string | number][] = pooled
            ? [...consts, ...flags]
            : [...consts.slice(0, 3), ['ADD', String(needSkip)], ...flags, ['ACCUM_SKIP', String(accSkip)]];
          const kb = kernel(
            `${fam}_bwd`,
            `tk::${fam}_bwd`,
            bconsts,
            [
              ['float*', 'dz'],
              pooled ? ['const uint8_t*', 'am'] : ['float*', 'dskip'],
              ['const float*', 'gy'],
              ['const float*', 'y'],
              ['const float*', 'z'],
              ['const float*', 'gamma'],
              ['const float*', 'beta'],
              ['const double*', 'part'],
              ['double*', 'bpart'],
              ['float*', 'ggamma'],
              ['float*', 'gbeta'],
              ['float', 'eps'],
            ],
            sc,
            [`backward of train mode: ${doc[0]}`, ...doc.slice(1)],
          );
          // the act derivative from the output: tanh always; relu too when pooled (no add after it)
          const y = g.act === 'tanh' || (pooled && g.act === 'relu') ? out : { expr: 'nullptr' };
          const second: Arg = am ?? (needSkip ? gradBuf(g.skip!) : { expr: 'nullptr' });
          return [
            {
              kernel: kb,
              args: [
                dz(),
                second,
                gradBuf(g.out),
                y,
                z,
                w,
                bias,
                { red: red.fwd },
                { red: red.bwd },
                { expr: GP(wN) },
                { expr: GP(bN) },
                { expr: eps },
              ],
              comment,
            },
          ];
        });
        break;
      }
      case 'linear': {
        const l = n as LinearNode;
        const a = l.attrs;
        const consts: [string, string | number][] = [
          ['I', a.inF],
          ['O', a.outF],
          ['ACT', ACT_C[g.act]],
        ];
        const doc = [
          `Linear ${a.inF}->${a.outF}${a.bias ? ' + bias' : ''}${g.act !== 'none' ? ` + ${g.act}` : ''}`,
          `x [B, ${a.inF}] -> out [B, ${a.outF}]; weight [${a.outF}, ${a.inF}]`,
          `first use: ${where(n)}`,
        ];
        const kf = kernel(
          'linear_fwd',
          'tk::linear_fwd',
          consts,
          [
            ['float*', 'out'],
            ['const float*', 'x'],
            ['const float*', 'w'],
            ['const float*', 'b'],
          ],
          '0',
          doc,
        );
        forward.push({
          kernel: kf,
          args: [valBuf(g.out), valBuf(n.inputs[0]), { expr: P(n.params[0]) }, { expr: a.bias ? P(n.params[1]) : 'nullptr' }],
          comment,
        });
        const needDx = rg.has(n.inputs[0]);
        bwd.push(() => {
          const acc = needDx ? accum(n.inputs[0]) : false;
          const kb = kernel(
            'linear_bwd',
            'tk::linear_bwd',
            [...consts, ['NEED_DX', needDx ? 'true' : 'false'], ['ACCUM_DX', acc ? 'true' : 'false']],
            [
              ['float*', 'dx'],
              ['float*', 'gw'],
              ['float*', 'gb'],
              ['const float*', 'gy'],
              ['const float*', 'y'],
              ['const float*', 'x'],
              ['const float*', 'w'],
            ],
            `(size_t)mb * ${a.outF}`,
            [`backward of: ${doc[0]}`, ...doc.slice(1)],
          );
          return [
            {
              kernel: kb,
              args: [
                needDx ? gradBuf(n.inputs[0]) : { expr: 'nullptr' },
                { expr: GP(n.params[0]) },
                { expr: a.bias ? GP(n.params[1]) : 'nullptr' },
                gradBuf(g.out),
                g.act !== 'none' ? valBuf(g.out) : { expr: 'nullptr' },
                valBuf(n.inputs[0]),
                { expr: P(n.params[0]) },
              ],
              comment,
            },
          ];
        });
        break;
      }
      case 'pool': {
        const p = n as PoolNode;
        const a = p.attrs;
        const [C, H, W] = inShape;
        const max = p.op === 'maxpool2d';
        const consts: [string, string | number][] = [
          ['C', C],
          ['H', H],
          ['W', W],
          ['KH', a.kh],
          ['KW', a.kw],
          ['SH', a.sh],
          ['SW', a.sw],
          ['PH', a.ph],
          ['PW', a.pw],
          ['MAX', max ? 'true' : 'false'],
        ];
        const doc = [
          `${max ? 'max' : 'avg'} pool ${a.kh}x${a.kw} stride ${a.sh},${a.sw} pad ${a.ph},${a.pw}`,
          `x ${fmtShape(inShape)} -> out ${fmtShape(outShape)}`,
          `first use: ${where(n)}`,
        ];
        const am: Arg = max ? amBuf(g.out) : { expr: 'nullptr' };
        forward.push({
          kernel: kernel(
            'pool_fwd',
            'tk::pool_fwd',
            consts,
            [
              ['float*', 'out'],
              ['uint8_t*', 'am'],
              ['const float*', 'x'],
            ],
            '0',
            doc,
          ),
          args: [valBuf(g.out), am, valBuf(n.inputs[0])],
          comment,
        });
        if (rg.has(n.inputs[0])) {
          bwd.push(() => {
            const acc = accum(n.inputs[0]);
            return [
              {
                kernel: kernel(
                  'pool_bwd',
                  'tk::pool_bwd',
                  [...consts, ['ACCUM', acc ? 'true' : 'false']],
                  [
                    ['float*', 'dx'],
                    ['const float*', 'gy'],
                    ['const uint8_t*', 'am'],
                  ],
                  '0',
                  [`backward of: ${doc[0]}`, ...doc.slice(1)],
                ),
                args: [gradBuf(n.inputs[0]), gradBuf(g.out), am],
                comment,
              },
            ];
          });
        }
        break;
      }
      case 'act': {
        const N = numel(outShape);
        const doc = [`${g.act} on ${fmtShape(outShape)}`, `first use: ${where(n)}`];
        forward.push({
          kernel: kernel(
            'act_fwd',
            'tk::act_fwd',
            [
              ['N', N],
              ['ACT', ACT_C[g.act]],
            ],
            [
              ['float*', 'out'],
              ['const float*', 'x'],
            ],
            '0',
            doc,
          ),
          args: [valBuf(g.out), valBuf(n.inputs[0])],
          comment,
        });
        if (rg.has(n.inputs[0])) {
          bwd.push(() => {
            const acc = accum(n.inputs[0]);
            return [
              {
                kernel: kernel(
                  'act_bwd',
                  'tk::act_bwd',
                  [
                    ['N', N],
                    ['ACT', ACT_C[g.act]],
                    ['ACCUM', acc ? 'true' : 'false'],
                  ],
                  [
                    ['float*', 'dx'],
                    ['const float*', 'gy'],
                    ['const float*', 'y'],
                  ],
                  '0',
                  [`backward of ${doc[0]}`, doc[1]],
                ),
                args: [gradBuf(n.inputs[0]), gradBuf(g.out), valBuf(g.out)],
                comment,
              },
            ];
          });
        }
        break;
      }
      case 'add': {
        const N = numel(outShape);
        const doc = [`add on ${fmtShape(outShape)}`, `first use: ${where(n)}`];
        forward.push({
          kernel: kernel(
            'add_fwd',
            'tk::add_fwd',
            [['N', N]],
            [
              ['float*', 'out'],
              ['const float*', 'a'],
              ['const float*', 'b'],
            ],
            '0',
            doc,
          ),
          args: [valBuf(g.out), valBuf(n.inputs[0]), valBuf(n.inputs[1])],
          comment,
        });
        bwd.push(() => {
          const bw: Call[] = [];
          for (const i of n.inputs)
            if (rg.has(i)) {
              const acc = accum(i);
              bw.push({
                kernel: kernel(
                  'grad_copy',
                  'tk::grad_copy',
                  [
                    ['N', N],
                    ['ACCUM', acc ? 'true' : 'false'],
                  ],
                  [
                    ['float*', 'dst'],
                    ['const float*', 'src'],
                  ],
                  '0',
                  [`gradient pass-through on ${fmtShape(outShape)}`],
                ),
                args: [gradBuf(i), gradBuf(g.out)],
                comment,
              });
            }
          return bw;
        });
        break;
      }
      case 'dropout': {
        const d = n as DropoutNode;
        const s = outShape;
        const C = d.attrs.channelwise ? s[0] : 1;
        const HW = numel(s) / C;
        const consts: [string, string | number][] = [
          ['C', C],
          ['HW', HW],
          ['CH', d.attrs.channelwise ? 'true' : 'false'],
        ];
        const doc = [`${d.attrs.channelwise ? 'Dropout2d' : 'Dropout'}(p=${d.attrs.p}) on ${fmtShape(s)}`, `first use: ${where(n)}`];
        const p = cfloat(d.attrs.p);
        forward.push({
          kernel: kernel(
            'dropout_fwd',
            'tk::dropout_fwd',
            consts,
            [
              ['float*', 'out'],
              ['const float*', 'x'],
              ['float', 'p'],
              ['uint32_t', 'stream'],
            ],
            '0',
            doc,
          ),
          args: [valBuf(g.out), valBuf(n.inputs[0]), { expr: p }, { expr: `${d.attrs.stream}u` }],
          comment,
        });
        if (rg.has(n.inputs[0])) {
          bwd.push(() => {
            const acc = accum(n.inputs[0]);
            return [
              {
                kernel: kernel(
                  'dropout_bwd',
                  'tk::dropout_bwd',
                  [...consts, ['ACCUM', acc ? 'true' : 'false']],
                  [
                    ['float*', 'dx'],
                    ['const float*', 'gy'],
                    ['float', 'p'],
                    ['uint32_t', 'stream'],
                  ],
                  '0',
                  [`backward of ${doc[0]}`, doc[1]],
                ),
                args: [gradBuf(n.inputs[0]), gradBuf(g.out), { expr: p }, { expr: `${d.attrs.stream}u` }],
                comment,
              },
            ];
          });
        }
        break;
      }
      case 'reshape': {
        const i = n.inputs[0];
        if (rg.has(i) && groot(i) !== groot(g.out)) {
          const N = numel(outShape);
          bwd.push(() => {
            const acc = accum(i);
            return [
              {
                kernel: kernel(
                  'grad_copy',
                  'tk::grad_copy',
                  [
                    ['N', N],
                    ['ACCUM', acc ? 'true' : 'false'],
                  ],
                  [
                    ['float*', 'dst'],
                    ['const float*', 'src'],
                  ],
                  '0',
                  [`gradient pass-through on ${fmtShape(outShape)}`],
                ),
                args: [gradBuf(i), gradBuf(g.out)],
                comment,
              },
            ];
          });
        }
        break;
      }
    }
  }
  for (const f of [...bwd].reverse()) backward.push(...f());

  const logits = valBuf(graph.output) as { buf: string };
  const dlogits = gradBuf(graph.output) as { buf: string };

  // ---------------------------------------------------------------- memory plan
  // schedule slots: a train/eval pair of forward variants shares one slot
  const fslot: number[] = [];
  forward.forEach((c, i) => fslot.push(i === 0 ? 0 : c.when === '!c.train' ? fslot[i - 1] : fslot[i - 1] + 1));
  const nf = forward.length ? fslot[fslot.length - 1] + 1 : 0;
  const steps: Call[][] = Array.from({ length: nf }, () => [] as Call[]);
  forward.forEach((c, i) => steps[fslot[i]].push(c));
  steps.push([], ...backward.map((c) => [c]));
  const lossStep = nf;
  const life = new Map<string, [number, number]>();
  const touch = (name: string, t: number) => {
    const l = life.get(name);
    life.set(name, l ? [Math.min(l[0], t), Math.max(l[1], t)] : [t, t]);
  };
  steps.forEach((s, t) => s.forEach((c) => c.args.forEach((a) => 'buf' in a && touch(a.buf, t))));
  touch(logits.buf, lossStep);
  touch(dlogits.buf, lossStep);
  const buffers: Buffer[] = [...bufs].map(([name, b]) => ({
    name,
    bytes: Math.ceil(b.bytes / 64) * 64,
    elem: b.elem,
    first: life.get(name)?.[0] ?? lossStep,
    last: life.get(name)?.[1] ?? lossStep,
    offset: 0,
  }));
  const arenaBytesPerSample = allocate(buffers);
  // Threads own batch slices; sample b of a buffer lives at offset·maxBatch + b·bytes.
  // When a buffer reuses memory of a dead one with another offset or size, a
  // thread could write its slice of the new buffer over another thread's slice
  // of the old one still in use: a barrier must separate them.
  const barrierAt = new Set<number>();
  for (const x of buffers)
    for (const y of buffers)
      if (
        y !== x &&
        y.last < x.first &&
        x.offset < y.offset + y.bytes &&
        y.offset < x.offset + x.bytes &&
        (x.offset !== y.offset || x.bytes !== y.bytes)
      )
        barrierAt.add(x.first);
  const flagged = (c: Call, t: number): Call => (barrierAt.has(t) ? { ...c, barrier: true } : c);
  const fwdCalls = forward.map((c, i) => flagged(c, fslot[i]));
  const bwdCalls = backward.map((c, t) => flagged(c, lossStep + 1 + t));

  return {
    graph,
    kernels,
    forward: fwdCalls,
    backward: bwdCalls,
    loss: { logits: logits.buf, dlogits: dlogits.buf, classes: nodes[graph.output].shape[0], barrier: barrierAt.has(lossStep) },
    buffers,
    arenaBytesPerSample,
    params,
    paramFloats: pOff,
    fbuffers,
    ibuffers,
    redPerThread: redDoubles,
    inputNumel: numel(graph.inputShape),
    classes: nodes[graph.output].shape[0],
    groups: describe,
  };
}

function unsupported(n: never): never {
  const node = n as Node;
  throw new Error(`the CPU backend has no kernel for op '${node.op}' (${node.module || 'model'} at ${node.source})`);
}

/** Greedy best-fit offsets (bytes per sample) for buffers with lifetimes; returns the arena size per sample. */
function allocate(buffers: Buffer[]): number {
  const placed: Buffer[] = [];
  const order = [...buffers].sort((a, b) => b.bytes - a.bytes || a.first - b.first || (a.name < b.name ? -1 : 1));
  let top = 0;
  for (const b of order) {
    const busy = placed.filter((p) => !(p.last < b.first || b.last < p.first)).sort((x, y) => x.offset - y.offset);
    let off = 0;
    for (const p of busy) {
      if (off + b.bytes <= p.offset) break;
      off = Math.max(off, p.offset + p.bytes);
    }
    b.offset = off;
    top = Math.max(top, off + b.bytes);
    placed.push(b);
  }
  return top;
}
