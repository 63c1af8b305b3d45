// A node in words and numbers, for summaries and diagrams (gen inspect, gen graph):
// what the op is ('Conv2d 3→16, 3×3, pad 1'), its multiply-adds and its output size.
import { describeAct } from '../ops/activations.js';
import { numel, type Graph, type Node } from './ir.js';

const pair = (a: number, b: number) => (a === b ? `${a}` : `${a}×${b}`);

/** 'Conv2d 3→16, 3×3, pad 1' */
export function describeNode(n: Node): string {
  switch (n.op) {
    case 'input':
      return 'input';
    case 'conv2d': {
      const a = n.attrs;
      const extra = [
        a.sh !== 1 || a.sw !== 1 ? `stride ${pair(a.sh, a.sw)}` : '',
        a.ph || a.pw || a.ph2 || a.pw2
          ? `pad ${a.ph === a.ph2 && a.pw === a.pw2 ? pair(a.ph, a.pw) : `${a.ph},${a.pw},${a.ph2},${a.pw2}`}`
          : '',
        a.dh !== 1 || a.dw !== 1 ? `dilation ${pair(a.dh, a.dw)}` : '',
        a.groups !== 1 ? `groups ${a.groups}` : '',
        a.bias ? '' : 'no bias',
      ].filter(Boolean);
      return [`Conv2d ${a.inC}→${a.outC}, ${a.kh}×${a.kw}`, ...extra].join(', ');
    }
    case 'linear':
      return `Linear ${n.attrs.inF}→${n.attrs.outF}${n.attrs.bias ? '' : ', no bias'}`;
    case 'maxpool2d':
    case 'avgpool2d': {
      const a = n.attrs;
      const name = n.op === 'maxpool2d' ? 'MaxPool' : 'AvgPool';
      return `${name} ${a.kh}×${a.kw}${a.sh !== a.kh || a.sw !== a.kw ? `, stride ${pair(a.sh, a.sw)}` : ''}${a.ph || a.pw ? `, pad ${pair(a.ph, a.pw)}` : ''}`;
    }
    case 'batchnorm':
      return `BatchNorm(${n.attrs.C})`;
    case 'dropout':
      return `${n.attrs.channelwise ? 'Dropout2d' : 'Dropout'}(p=${n.attrs.p})`;
    case 'unary':
      return describeAct(n.attrs.fn, n.attrs.p);
    case 'binary':
      return n.attrs.fn;
    case 'concat':
      return `cat of ${n.inputs.length}`;
    case 'reshape':
      return 'view';
    case 'softmax':
      return n.attrs.log ? 'log_softmax' : 'softmax';
  }
}

/** Multiply-adds per sample of the layers with weights (conv, linear), as torchinfo counts them; 0 for the rest. */
export function multAdds(n: Node): number {
  if (n.op === 'conv2d') return numel(n.shape) * (n.attrs.inC / n.attrs.groups) * n.attrs.kh * n.attrs.kw;
  if (n.op === 'linear') return n.attrs.inF * n.attrs.outF;
  return 0;
}

/** Bytes per sample of a node's float32 output (a view shares its input's: 0). */
export function outputBytes(n: Node): number {
  return n.op === 'reshape' || n.op === 'input' ? 0 : 4 * numel(n.shape);
}

/** Parameter counts per node, a shared parameter at its first use only (so they sum to the total). */
export function paramCounts(g: Graph): number[] {
  const size = new Map(g.state.filter((s) => s.kind === 'param').map((s) => [s.name, numel(s.shape)]));
  const counted = new Set<string>();
  return g.nodes.map((n) =>
    n.params.reduce((c, p) => {
      if (!size.has(p) || counted.has(p)) return c;
      counted.add(p);
      return c + size.get(p)!;
    }, 0),
  );
}

/** '1.23 M', '45.6 k', '789' */
export function si(v: number): string {
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)} G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return String(v);
}

/** '12.0 KiB' */
export function bytesText(b: number): string {
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(2)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${b} B`;
}
