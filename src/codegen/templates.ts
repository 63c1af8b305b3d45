// Handlebars templates of templates/: compiled once, rendered with a view.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

export const TEMPLATE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../templates');

const cache = new Map<string, HandlebarsTemplateDelegate>();

export function render(name: string, view: object): string {
  let t = cache.get(name);
  if (!t) {
    t = Handlebars.compile(fs.readFileSync(path.join(TEMPLATE_DIR, name), 'utf8'), { noEscape: true, strict: true });
    cache.set(name, t);
  }
  return t(view);
}

/** The template folders of the CPU packages. */
export const CPU_TEMPLATE_DIRS = ['c', 'cpu', 'node', 'cmake', 'js'];

/** Every CPU template file's text, for the build cache key. */
export function templatesDigestInput(): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${path.relative(TEMPLATE_DIR, p)}\n${fs.readFileSync(p, 'utf8')}`);
    }
  };
  for (const d of CPU_TEMPLATE_DIRS) walk(path.join(TEMPLATE_DIR, d));
  return out.join('\n');
}
