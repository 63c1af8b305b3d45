// Training curves and the comparison of designs (the book's figure 8.13), as
// Vega-Lite specs rendered to SVG by Vega without a browser (loaded only here).
import type { RunLog } from '../train/log.js';
import { FONT } from './render.js';

type Spec = Record<string, unknown>;

const CONFIG = { font: FONT, view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } };

/** SVG of a Vega-Lite spec. */
export async function vegaLiteSvg(spec: Spec): Promise<string> {
  const [vl, vega] = await Promise.all([import('vega-lite'), import('vega')]);
  const compiled = vl.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CONFIG, ...spec } as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A run's name in figures: its model and the arguments it was built with. */
export function runTitle(log: RunLog): string {
  const args = log.run.args && !['{}', ''].includes(log.run.args.trim()) ? ` ${log.run.args}` : '';
  return `${log.run.model}${args}`;
}

/** Loss, and train / validation accuracy per epoch, side by side. */
export function curvesSpec(log: RunLog): Spec {
  const loss = log.epochs.map((e) => ({ epoch: e.epoch, loss: e.loss }));
  const acc = log.epochs.flatMap((e) => [
    { epoch: e.epoch, split: 'train (during the epoch)', accuracy: e.trainAccuracy },
    ...(e.valAccuracy === null ? [] : [{ epoch: e.epoch, split: 'validation', accuracy: e.valAccuracy }]),
  ]);
  const x = { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } };
  const ips = log.epochs.length ? log.epochs.reduce((s, e) => s + e.imagesPerSecond, 0) / log.epochs.length : 0;
  return {
    title: {
      text: runTitle(log),
      offset: 10,
      subtitle: `${log.run.backend}, batch ${log.run.batchSize}, ${log.run.images} images, ${Math.round(ips)} img/s`,
      fontSize: 14,
    },
    hconcat: [
      {
        width: 320,
        height: 220,
        data: { values: loss },
        mark: { type: 'line', point: log.epochs.length <= 30 },
        encoding: { x, y: { field: 'loss', type: 'quantitative', title: 'training loss', scale: { zero: false } } },
      },
      {
        width: 320,
        height: 220,
        data: { values: acc },
        mark: { type: 'line', point: log.epochs.length <= 30 },
        encoding: {
          x,
          y: { field: 'accuracy', type: 'quantitative', scale: { zero: false }, axis: { format: '.2f' } },
          color: { field: 'split', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 400 } },
        },
      },
    ],
  };
}

export interface DesignRow {
  design: string;
  split: 'train' | 'val';
  accuracy: number;
  /** standard deviation over seeds (0 for one run) */
  sd: number;
  runs: number;
}

/** Train and validation accuracy per design as grouped bars, with ±1 sd over seeds as error bars (figure 8.13). */
export function compareSpec(rows: DesignRow[], title: string): Spec {
  const data = rows.map((r) => ({ ...r, lo: r.accuracy - r.sd, hi: r.accuracy + r.sd }));
  const lo = Math.max(0, Math.floor((Math.min(...data.map((d) => d.lo)) - 0.05) * 20) / 20);
  const x = { field: 'design', type: 'nominal', sort: null, title: null, axis: { labelAngle: -30, labelLimit: 220 } };
  const y = { type: 'quantitative', scale: { domain: [lo, 1] }, title: 'accuracy' };
  return {
    title: { text: title, fontSize: 14 },
    width: { step: 26 },
    height: 260,
    data: { values: data },
    encoding: { x, xOffset: { field: 'split', sort: ['train', 'val'] } },
    layer: [
      {
        mark: { type: 'bar', clip: true },
        encoding: {
          y: { ...y, field: 'accuracy' },
          color: { field: 'split', type: 'nominal', sort: ['train', 'val'], title: null, legend: { orient: 'top' } },
          tooltip: [{ field: 'runs' }],
        },
      },
      { mark: { type: 'rule', color: '#222' }, encoding: { y: { ...y, field: 'lo' }, y2: { field: 'hi' } } },
      {
        mark: { type: 'text', dy: -12, fontSize: 10 },
        encoding: { y: { ...y, field: 'hi' }, text: { field: 'accuracy', format: '.3f' } },
      },
    ],
  };
}
