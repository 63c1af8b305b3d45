// gen saliency and gen attack: the input gradient of a trained model as a heat
// map over the image, and a sign-gradient attack that makes it answer another class.
import type { Command } from 'commander';
import { saliency, signGradientAttack } from '../api/inside.js';
import { softmax } from '../train/loop.js';
import { modelOptions } from './common.js';
import { example } from './help.js';
import { look, lookOptions, type Look, type LookCli } from './look.js';

/** A class by name or number. */
function classIndex(l: Look, name: string, flag: string): number {
  const i = l.classes.indexOf(name);
  if (i >= 0) return i;
  const n = Number(name);
  if (Number.isInteger(n) && n >= 0 && n < l.classes.length) return n;
  throw new Error(`${flag} must be one of the model's classes (${l.classes.join(', ')}), got '${name}'`);
}

/** '8/255' or '0.03'. */
export function parseEps(v: string): number {
  const m = /^\s*([\d.]+(?:e-?\d+)?)\s*(?:\/\s*([\d.]+))?\s*$/.exec(v);
  const e = m ? Number(m[1]) / (m[2] ? Number(m[2]) : 1) : NaN;
  if (!(e > 0 && e <= 1)) throw new Error(`--eps must be a number in (0, 1] such as 8/255 or 0.03 (pixel units), got '${v}'`);
  return e;
}

const ranked = (l: Look, p: number[]) =>
  p
    .map((v, i) => ({ v, i }))
    .sort((a, b) => b.v - a.v)
    .map(({ v, i }) => `${l.classes[i]} ${v.toFixed(3)}`)
    .join(', ');

function predictedClass(l: Look): number {
  l.model.eval();
  const p = [...softmax(l.model.forward(l.x, 1), 1)];
  return p.indexOf(Math.max(...p));
}

export function register(program: Command): void {
  lookOptions(
    modelOptions(
      example(
        program
          .command('saliency <model.ts>')
          .description('|d loss / d input| of a trained model as a heat map over the image (PNG or SVG)'),
        'gen saliency model.ts --weights runs/net.safetensors --index 3 --out saliency.png',
      ),
    ),
    true,
  )
    .option('--target <class>', "the class whose loss to differentiate (default: the model's answer)")
    .requiredOption('--out <file.png|svg>', 'the figure')
    .action(async (file: string, o: LookCli & { target?: string; out: string }) => {
      const l = await look(file, o);
      const label = o.target === undefined ? predictedClass(l) : classIndex(l, o.target, '--target');
      const map = await saliency(l.model, l.x, label);
      const { saliencyFigure } = await import('./attack-draw.js');
      process.stdout.write((await saliencyFigure(l, map, label, o.out)) + '\n');
    });

  lookOptions(
    modelOptions(
      example(
        program
          .command('attack <model.ts> [image]')
          .description(
            'change an image within ±eps per pixel (iterated sign gradient; FGSM with --steps 1) until the model answers --target',
          ),
        'gen attack model.ts --weights runs/net.safetensors airplane.png --target bird --eps 8/255 --out fooled.png',
        'gen attack model.ts --weights runs/net.safetensors --index 3 --eps 2/255 --steps 1 --out fgsm.png --figure fgsm-figure.png',
      ),
    ),
    true,
  )
    .option('--target <class>', 'the class to make the model answer (default: any but its answer)')
    .option('--eps <x>', 'largest change of a pixel, in [0, 1] units', '8/255')
    .option('--steps <n>', 'sign-gradient steps (1: FGSM)', '10')
    .option('--alpha <x>', 'step size in [0, 1] units (default 2.5·eps/steps; eps for one step)')
    .requiredOption('--out <file.png>', 'the adversarial image, at the model input size')
    .option('--figure <file.png|svg>', 'also draw the original, the change and the adversarial image side by side')
    .action(async (file: string, image: string | undefined, o: LookCli & AttackCli) => {
      if (image !== undefined && o.image !== undefined) throw new Error('give the image once: as an argument or as --image');
      const l = await look(file, { ...o, image: image ?? o.image });
      const answer = predictedClass(l);
      const target = o.target === undefined ? undefined : classIndex(l, o.target, '--target');
      if (target === answer) throw new Error(`the model already answers ${l.classes[answer]} for ${l.source}`);
      const steps = Number(o.steps);
      const r = await signGradientAttack(l.model, l.bytes, l.shape, l.normalization, {
        target,
        label: answer,
        eps: parseEps(o.eps),
        steps,
        alpha: o.alpha === undefined ? undefined : parseEps(o.alpha),
      });
      const { attackFigures } = await import('./attack-draw.js');
      await attackFigures(l, r, o);
      const what = target === undefined ? `away from ${l.classes[answer]}` : `toward ${l.classes[target]}`;
      process.stdout.write(
        [
          `before: ${ranked(l, r.before)}`,
          `after:  ${ranked(l, r.after)}  (${r.fooledAt === null ? `not fooled in ${steps} step(s)` : `fooled at step ${r.fooledAt} of ${steps}`}, ${what}, max change ${Math.round(r.linf * 255)}/255)`,
          `wrote ${o.out}${o.figure ? ` and ${o.figure}` : ''}`,
          '',
        ].join('\n'),
      );
    });
}

export interface AttackCli {
  target?: string;
  eps: string;
  steps: string;
  alpha?: string;
  out: string;
  figure?: string;
}
