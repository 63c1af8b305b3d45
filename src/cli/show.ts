// gen show: a layer's feature maps beside the input image (the book's figures 8.2,
// 8.4 and 8.5), with --kernel setting one conv by hand as the book does.
import type { Command } from 'commander';
import { resolveTaps } from '../graph/taps.js';
import type { TrainableModel } from '../train/model.js';
import { modelOptions } from './common.js';
import { example } from './help.js';
import { softmax } from '../train/loop.js';
import { look, lookOptions, type Look, type LookCli } from './look.js';

/** The book's hand-set 3×3 kernels: a 1/9 blur (figure 8.4) and vertical / horizontal edges (8.5). */
export const KERNELS: Record<string, number[]> = {
  blur: Array(9).fill(1 / 9),
  'edge-v': [-1, 0, 1, -1, 0, 1, -1, 0, 1],
  'edge-h': [-1, -1, -1, 0, 0, 0, 1, 1, 1],
};

/**
 * Sets the conv `layer` names by hand, as the book's `conv.weight[:] = …; conv.bias[:] = 0`:
 * every output channel applies the kernel to every input channel and sums them.
 */
export function setKernel(model: TrainableModel, layer: string, kernel: string): void {
  const k = KERNELS[kernel];
  if (!k) throw new Error(`--kernel must be one of ${Object.keys(KERNELS).join(', ')}; got '${kernel}'`);
  const g = model.graph;
  const node = g.nodes[resolveTaps(g, [layer])[0].node];
  if (node.op !== 'conv2d') throw new Error(`--kernel sets a Conv2d by hand; ${layer} is a ${node.op} (${node.source})`);
  const a = node.attrs;
  if (a.kh !== 3 || a.kw !== 3 || a.groups !== 1)
    throw new Error(
      `--kernel ${kernel} is 3×3 over every input channel; ${layer} is ${a.kh}×${a.kw}${a.groups > 1 ? ` in ${a.groups} groups` : ''}`,
    );
  const state = model.stateDict();
  for (const [key, canon] of Object.entries(g.keys)) {
    const t = state.get(key)!;
    if (canon === node.params[0]) t.data = Float32Array.from({ length: t.data.length }, (_, i) => k[i % 9]);
    if (canon === node.params[1]) t.data = new Float32Array(t.data.length);
  }
  model.loadStateDict(state);
}

interface ShowCli extends LookCli {
  layer: string;
  out: string;
  kernel?: string;
  channels?: string;
}

export function register(program: Command): void {
  lookOptions(
    modelOptions(
      example(
        program
          .command('show <model.ts>')
          .description("draw a layer's channels (feature maps) beside the input image, on one colour scale, as PNG or SVG"),
        'gen show model.ts --weights runs/net.safetensors --index 3 --layer conv1 --out maps.png',
        'gen show model.ts --image bird.png --layer conv1 --kernel edge-v --out edges.png',
      ),
    ),
    false,
  )
    .requiredOption('--layer <path>', "module path ('conv1', 'resblocks.3') or node id ('#4') whose output to draw")
    .requiredOption('--out <file.png|svg>', 'the figure')
    .option('--kernel <name>', 'set the layer (a 3×3 Conv2d) by hand, bias 0: blur (1/9), edge-v, edge-h')
    .option('--channels <list>', 'channels to draw, e.g. 0,3,5 (default: all, up to 64)')
    .action(async (file: string, o: ShowCli) => {
      const l = await look(file, o);
      if (o.kernel) setKernel(l.model, o.layer, o.kernel);
      const f = await showFigure(l, o);
      const { writeFigure } = await import('../viz/render.js');
      await writeFigure(o.out, f.svg);
      process.stdout.write(`${o.out}: ${f.line}\n`);
    });
}

/** The figure of gen show (the layer's maps of `l`'s image), its layout and a line saying what it holds. */
export async function showFigure(l: Look, o: Pick<ShowCli, 'layer' | 'kernel' | 'channels' | 'weights'>) {
  const [{ mapsFigure, planes }, { num }] = await Promise.all([import('../viz/maps.js'), import('../viz/svg.js')]);
  const a = (await l.model.activations(l.x, [o.layer])).get(o.layer)!;
  const shape = a.shape.slice(1);
  const [C] = planes(shape);
  const channels = o.kernel ? [0] : (parseChannels(o.channels, C) ?? [...Array(Math.min(C, 64)).keys()]);
  const caption = [l.source];
  if (l.label !== undefined) caption.push(`class: ${l.classes[l.label]}`);
  if (o.weights) caption.push(predicted(l));
  const inC = l.model.graph.nodes[l.model.graph.nodes[a.node].inputs[0]]?.shape[0];
  const note = o.kernel
    ? `--kernel ${o.kernel}: each output channel sums the kernel over the ${inC} input channels, bias 0 (all ${C} are equal: channel 0 drawn)`
    : undefined;
  const { svg, layout } = mapsFigure({
    title: `${l.model.graph.name} · ${o.layer} [${shape.join(', ')}]${o.kernel ? ` · ${o.kernel} kernel` : ''}`,
    input: { bytes: l.bytes, shape: l.shape, caption },
    values: a.data,
    shape,
    channels,
    note,
  });
  const line = `${o.layer} [${shape.join(', ')}] of ${l.source}, ${channels.length} channel(s), values ${num(layout.scale.lo)} to ${num(layout.scale.hi)}`;
  return { svg, layout, line, values: a.data, shape };
}

/** 'bird 0.93' of the model's eval-mode prediction. */
function predicted(l: Look): string {
  l.model.eval();
  const p = softmax(l.model.forward(l.x, 1), 1);
  const best = p.indexOf(Math.max(...p));
  return `predicted: ${l.classes[best]} ${p[best].toFixed(2)}`;
}

function parseChannels(text: string | undefined, C: number): number[] | undefined {
  if (text === undefined) return undefined;
  const cs = text.split(',').map((s) => Number(s.trim()));
  const bad = cs.find((c) => !Number.isInteger(c) || c < 0 || c >= C);
  if (bad !== undefined || !cs.length) throw new Error(`--channels must list channels in 0..${C - 1}, got '${text}'`);
  return cs;
}
