// Loads a user's model file and picks its model: an exported nn.Module class
// (constructed with the given arguments) or an exported instance. TypeScript
// files run through tsx, registered on first use (the npm package is compiled
// JavaScript); the file's module system follows Node's rules: .mts ESM, .cts
// CommonJS, .ts the nearest package.json "type" (CommonJS when absent).
import fs from 'node:fs';
import { createRequire } from 'node:module';
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

type Exports = Record<string, unknown>;

const isClass = (v: unknown): v is new (...a: unknown[]) => unknown =>
  typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof Module;

/** Looks like an nn.Module of another copy of tensorkiln (instanceof fails across copies). */
const foreignModule = (v: unknown): boolean => {
  const proto: unknown = typeof v === 'function' ? ((v as { prototype?: unknown }).prototype ?? Object.getPrototypeOf(v)) : undefined;
  return typeof (proto as { stateDict?: unknown } | undefined)?.stateDict === 'function' && !isClass(v) && !(v instanceof Module);
};

/** The exports that are models: nn.Module subclasses and instances. */
export function modelExports(mod: Exports): string[] {
  return Object.keys(mod).filter((k) => isClass(mod[k]) || mod[k] instanceof Module);
}

/** Imports `file` and picks its model `name` (optional when it exports exactly one). */
export async function loadModelExport(file: string, name?: string, args: unknown[] = []): Promise<{ model: Module; name: string }> {
  const mod = await importModelFile(file);
  const models = modelExports(mod);
  if (name === undefined) {
    if (models.length !== 1) {
      const which = models.length
        ? `${models.length} models (${models.join(', ')}); pick one with --model <Name>`
        : 'no nn.Module class or instance';
      throw new Error(`${file} exports ${which}${hint(file, mod)}`);
    }
    name = models[0];
  }
  const v = mod[name];
  if (isClass(v)) return { model: new v(...args) as Module, name };
  if (v instanceof Module) {
    if (args.length) throw new Error(`${file}: '${name}' is a model instance, not a class; it takes no --args`);
    return { model: v, name };
  }
  if (v === undefined)
    throw new Error(`${file} exports no model '${name}'; it exports: ${models.join(', ') || '(no nn.Module classes)'}${hint(file, mod)}`);
  throw new Error(`${file}: '${name}' is not an nn.Module subclass or instance${hint(file, mod)}`);
}

/** Imports `file` and constructs its exported class `name` with `args` (or takes its exported instance). */
export async function loadModel(file: string, name?: string, args: unknown[] = []): Promise<Module> {
  return (await loadModelExport(file, name, args)).model;
}

function hint(file: string, mod: Exports): string {
  const foreign = Object.keys(mod).filter((k) => foreignModule(mod[k]));
  if (!foreign.length) return '';
  return ` (${foreign.join(', ')} ${foreign.length > 1 ? 'are models' : 'is a model'} of another copy of tensorkiln: ${file} imports one, gen runs ${path.resolve(import.meta.dirname, '../..')}; run the project's own gen, e.g. npx gen)`;
}

async function importModelFile(file: string): Promise<Exports> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new Error(`model file not found: ${file}`);
  const ts = /\.[cm]?tsx?$/.test(abs);
  if (isCommonJs(abs)) {
    if (ts) await shareLibrary();
    return (ts ? await tsxRequire(file) : createRequire(abs))(abs) as Exports;
  }
  if (ts) await registerTsx();
  return (await import(pathToFileURL(abs).href)) as Exports;
}

/** Node's rule: .cts/.cjs CommonJS, .mts/.mjs ESM, else the nearest package.json's "type". */
export function isCommonJs(file: string): boolean {
  if (/\.c[jt]sx?$/.test(file)) return true;
  if (/\.m[jt]sx?$/.test(file)) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { type?: string }).type !== 'module';
      } catch (e) {
        throw new Error(`${pkg} is not valid JSON: ${(e as Error).message}`, { cause: e });
      }
    }
    if (path.dirname(dir) === dir) return true;
  }
}

// Running from the TypeScript sources (a checkout, `gen` under tsx), tsx is registered already.
const fromSource = import.meta.url.endsWith('.ts');
let esm: Promise<void> | undefined;
let cjs: Promise<NodeJS.Require> | undefined;

function registerTsx(): Promise<void> {
  esm ??= fromSource ? Promise.resolve() : import('tsx/esm/api').then((tsx) => void tsx.register());
  return esm;
}

/** tsx's require, scoped to the model files, so it compiles nothing else. */
function tsxRequire(file: string): Promise<NodeJS.Require> {
  // The checkout's tsconfig maps 'tensorkiln' to src/*.ts, which this require would compile into a second copy.
  if (fromSource)
    throw new Error(
      `${file} is a CommonJS module (Node's rule: .cts, or .ts without "type": "module"); gen run from a checkout loads ES modules only: name it .mts (the npm package loads both)`,
    );
  cjs ??= import('tsx/cjs/api').then((tsx) => {
    const scoped = tsx.register({ namespace: 'tensorkiln-model' });
    return ((id: string) => scoped.require(id, import.meta.url)) as NodeJS.Require;
  });
  return cjs;
}

/**
 * tsx compiles whatever a CommonJS file requires, tensorkiln's ES modules too: a second copy
 * with its own nn.Module class. Loading the ES entries registers them for the package's require
 * entries (cjs/*.cjs) to return instead.
 */
async function shareLibrary(): Promise<void> {
  await import('../index.js');
  await import('../api/index.js');
}

/** Parses `--input C,H,W`. */
export function parseInputShape(s: string | undefined): number[] | undefined {
  if (!s) return undefined;
  const dims = s.split(/[,x ]/).filter(Boolean).map(Number);
  if (dims.length !== 3 || dims.some((d) => !Number.isInteger(d) || d < 1))
    throw new Error(`--input must be C,H,W with positive integers, e.g. 3,32,32; got '${s}'`);
  return dims;
}
