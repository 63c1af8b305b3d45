// Loads a user's model file (TypeScript, run through tsx) and instantiates a class.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Module } from './module.js';

/** snake_case keys (as in golden case.json) → camelCase constructor options. */
export function camelArgs(args: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()), v]));
}

export function parseArgs(json: string | undefined): unknown[] {
  if (json === undefined || json === '') return [];
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    throw new Error(`--args is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') return [camelArgs(v as Record<string, unknown>)];
  return [v];
}

/** Imports `file` and constructs its exported class `name` with `args`. */
export async function loadModel(file: string, name: string, args: unknown[] = []): Promise<Module> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`model file not found: ${file}`);
  const mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  const Cls = mod[name];
  if (typeof Cls !== 'function') {
    const classes = Object.entries(mod)
      .filter(([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Module)
      .map(([k]) => k);
    throw new Error(`${file} exports no model '${name}'; it exports: ${classes.join(', ') || '(no nn.Module classes)'}`);
  }
  const model = new (Cls as new (...a: unknown[]) => unknown)(...args);
  if (!(model instanceof Module)) throw new Error(`${file}: '${name}' is not an nn.Module subclass`);
  return model;
}

/** Parses `--input C,H,W`. */
export function parseInputShape(s: string | undefined): number[] | undefined {
  if (!s) return undefined;
  const dims = s.split(/[,x ]/).filter(Boolean).map(Number);
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1))
    throw new Error(`--input must be C,H,W with positive integers, e.g. 3,32,32; got '${s}'`);
  return dims;
}
