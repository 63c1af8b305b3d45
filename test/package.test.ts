// The npm package as a user gets it: `npm pack`, installed from the tarball into new
// projects of each kind ("type": "commonjs" as npm init writes it, "type": "module",
// TypeScript under strict + nodenext and under `tsc --init`'s defaults with skipLibCheck
// off), a user's model run through gen, plain-node ESM and CJS, and the TS API; then the
// generated package alone, checked against PyTorch's golden case. Offline: npm installs
// the tarball's dependencies from its cache (CI runs `npm ci` first).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSafetensors } from '../src/io/safetensors.js';

const root = path.resolve(import.meta.dirname, '..');
const golden = path.resolve(root, '../shared/golden/Net');
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-package-'));
const app = path.join(tmp, 'app');
const ESC = '\x1b';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function run(cwd: string, cmd: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs and expects exit 0, showing the output when not. */
function ok(cwd: string, cmd: string, args: string[]): string {
  const r = run(cwd, cmd, args);
  expect(r.code, `${cmd} ${args.join(' ')} in ${cwd}:\n${r.out}\n${r.err}`).toBe(0);
  return r.out;
}

const node = (cwd: string, ...args: string[]) => ok(cwd, process.execPath, args);
const gen = (cwd: string, ...args: string[]) => run(cwd, process.execPath, [path.join(app, 'node_modules/.bin/gen'), ...args]);
const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};

// The book's Net, written as a user would (18,090 parameters: 448 + 1,160 + 16,416 + 66).
const MODEL = `import { F, nn, torch, type Tensor } from 'tensorkiln';

export class Net extends nn.Module {
  conv1 = new nn.Conv2d(3, 16, { kernelSize: 3, padding: 1 });
  conv2 = new nn.Conv2d(16, 8, { kernelSize: 3, padding: 1 });
  fc1 = new nn.Linear(8 * 8 * 8, 32);
  fc2 = new nn.Linear(32, 2);

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.tanh(this.conv1(x)), 2);
    out = F.maxPool2d(torch.tanh(this.conv2(out)), 2);
    out = out.view(-1, 8 * 8 * 8);
    out = torch.tanh(this.fc1(out));
    return this.fc2(out);
  }
}
`;
// A model instance: 3,072·10 + 10 + 10·2 + 2 = 30,752 parameters.
const INSTANCE = `import { nn } from 'tensorkiln';
export const model = new nn.Sequential(new nn.Flatten(), new nn.Linear(3 * 32 * 32, 10), new nn.ReLU(), new nn.Linear(10, 2));
`;

let cjsVal = NaN; // validation accuracy of the CommonJS API run, re-measured by the TS one
let pack: { filename: string; size: number; unpackedSize: number; files: { path: string; size: number }[] };

beforeAll(() => {
  pack = JSON.parse(ok(root, 'npm', ['pack', '--json', '--pack-destination', tmp]))[0];
  write(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'commonjs' }));
  ok(app, 'npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, pack.filename)]);
  for (const f of ['model.ts', 'model.mts', 'model.cts', 'esm/model.ts', 'esm/model.mts', 'esm/model.cts']) write(path.join(app, f), MODEL);
  write(path.join(app, 'esm/package.json'), '{ "type": "module" }');
  write(path.join(app, 'instance.ts'), INSTANCE);
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the tarball', () => {
  it('holds the compiled library, its require entries, templates and the CIFAR-2 sample; no sources, tests or tools', () => {
    const files = pack.files.map((f) => f.path);
    const data = pack.files.filter((f) => f.path.startsWith('data/')).reduce((a, f) => a + f.size, 0);
    console.log(
      `${pack.filename}: ${(pack.size / 1e6).toFixed(1)} MB packed, ${(pack.unpackedSize / 1e6).toFixed(1)} MB unpacked ` +
        `(${(data / 1e6).toFixed(1)} MB of it data/cifar2), ${files.length} files`,
    );
    for (const f of ['bin/gen.js', 'dist/index.js', 'dist/index.d.ts', 'dist/api/index.js', 'cjs/index.cjs', 'cjs/api.cjs'])
      expect(files).toContain(f);
    expect(files).toContain('templates/js/index.js.hbs');
    expect(files.filter((f) => f.startsWith('data/cifar2/'))).toHaveLength(6);
    expect(files.filter((f) => /^(src|test|tools|bench|scripts|generated|\.ci|node_modules)\//.test(f))).toEqual([]);
    expect(pack.unpackedSize - data).toBeLessThan(2e6);
  });
});

describe('gen from the installed package', () => {
  it('--version, and --help with an example per verb, no escape codes when piped', () => {
    const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
    expect(gen(app, '--version').out.trim()).toBe(version);
    const help = gen(app, '--help');
    expect(help.code).toBe(0);
    for (const verb of ['inspect', 'build', 'train', 'eval', 'predict', 'check', 'convert'])
      expect(help.out).toMatch(new RegExp(`\\$ gen ${verb} `));
    expect(help.out + help.err).not.toContain(ESC);
  });

  it.each(['model.ts', 'model.mts', 'model.cts', 'esm/model.ts', 'esm/model.mts', 'esm/model.cts'])(
    'inspect %s (commonjs project, esm/ a "type": "module" one), --model optional',
    (file) => {
      const r = gen(app, 'inspect', file);
      expect(r.err).toBe('');
      expect(r.out).toContain('parameters: [432,16,1152,8,16384,32,64,2]');
      expect(r.out).toContain('total: 18090');
    },
  );

  it('a file exporting a model instance loads as the model; a line of model.ts names a shape error', () => {
    expect(gen(app, 'inspect', 'instance.ts').out).toContain('total: 30752');
    const bad = gen(app, 'inspect', 'model.cts', '--input', '3,16,16');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^gen: view\(-1, 512\) at model\.cts:12: the input \[B, 8, 4, 4\] has 128 values per sample, not 512/);
  });

  it('build, train --json and eval --json', () => {
    const b = gen(app, 'build', 'model.ts');
    expect(b.err).toBe('');
    expect(b.out).toMatch(/generated\/net: built/);
    expect(fs.existsSync(path.join(app, 'generated/net/build/init.safetensors'))).toBe(true);
    const t = gen(app, 'train', 'model.ts', '--epochs', '1', '--json', '--save', 'runs/net.safetensors');
    expect(t.err).toBe('');
    const r = JSON.parse(t.out);
    expect(r).toMatchObject({ model: 'Net', backend: 'cpu', epochs: 1, images: 8000, saved: 'runs/net.safetensors' });
    expect(r.losses[0]).toBeLessThan(Math.log(2)); // one epoch already learns something
    expect(r.valAccuracy).toBeGreaterThan(0.7);
    const e = gen(app, 'eval', 'model.ts', '--weights', 'runs/net.safetensors', '--json');
    const ev = JSON.parse(e.out);
    expect([ev.train.accuracy, ev.val.accuracy, ev.classes]).toEqual([r.trainAccuracy, r.valAccuracy, ['airplane', 'bird']]);
  });
});

describe('the library from plain node and TypeScript', () => {
  it('ESM import and CJS require give the same classes', () => {
    write(
      path.join(app, 'esm/same.js'),
      `import * as tk from 'tensorkiln';
import * as api from 'tensorkiln/api';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
console.log(JSON.stringify({ module: require('tensorkiln').Module === tk.Module, api: require('tensorkiln/api').train === api.train }));
`,
    );
    expect(JSON.parse(node(path.join(app, 'esm'), 'same.js'))).toEqual({ module: true, api: true });
  });

  it("CJS require('tensorkiln/api') opens gen build's package and trains", () => {
    write(
      path.join(app, 'use-api.cjs'),
      `const { manualSeed } = require('tensorkiln');
const { cifar2Data, openModel, saveWeights, train } = require('tensorkiln/api');
(async () => {
  manualSeed(0);
  const model = await openModel({ file: 'model.ts' }, { outDir: 'generated', log: (l) => console.error(l) });
  const data = cifar2Data();
  const r = await train(model, data, { epochs: 1, batchSize: 64, lr: 1e-2, seed: 0 });
  saveWeights(model, 'runs/cjs.safetensors', data.normalization, 1);
  console.log(JSON.stringify({ val: r.valAccuracy }));
})();
`,
    );
    const r = run(app, process.execPath, ['use-api.cjs']);
    expect(r.err).toBe(''); // a rebuild would have been logged: gen build's package was reused
    cjsVal = JSON.parse(r.out).val;
    expect(cjsVal).toBeGreaterThan(0.7);
  });

  const api = `import { manualSeed, trace } from 'tensorkiln';
import { openModule, cifar2Data, train, predict } from 'tensorkiln/api';
import { Net } from './model.js';

export async function main(): Promise<void> {
  manualSeed(0);
  console.log(JSON.stringify(trace(new Net()).state.map((s) => s.name)));
  const model = await openModule(new Net(), { name: 'net_ts' });
  const data = cifar2Data();
  const r = await train(model, data, { epochs: 1, batchSize: 64, lr: 1e-2, seed: 0 });
  const images = ['airplane', 'bird'].map((c) => \`../node_modules/tensorkiln/examples/images/\${c}.png\`);
  console.log(JSON.stringify({ val: r.valAccuracy, classes: predict(model, images, data).map((p) => p.className) }));
}
`;
  // The generated package's types, as a user's code meets them.
  const usesGenerated = `import { Model, info, readSafetensors, type SgdOptions } from '../generated/net/index.js';

export function step(file: string): number {
  const m = Model.load(file, { maxBatch: 8 });
  const opts: SgdOptions = { lr: 1e-2, momentum: 0.9 };
  const x = new Float32Array(8 * info.inputShape[0] * info.inputShape[1] * info.inputShape[2]);
  const loss = m.trainStep(x, new Int32Array(8), 8, opts);
  m.save(file, { trainingState: true });
  const { classes, probabilities } = m.predict(x, 8);
  return loss + classes[0]! + probabilities.length + readSafetensors(file).tensors.size + Object.keys(m.loadWeights(file)).length;
}
`;

  it('TypeScript, strict + nodenext, CommonJS: tsc --noEmit passes; the API trains under tsx', () => {
    const dir = path.join(app, 'ts-strict');
    write(path.join(dir, 'package.json'), '{ "type": "commonjs" }');
    const options = { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: false, noEmit: true };
    write(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options }));
    write(path.join(dir, 'model.ts'), MODEL);
    write(path.join(dir, 'api.ts'), api);
    write(path.join(dir, 'main.ts'), "import { main } from './api.js';\nvoid main();\n");
    write(path.join(dir, 'uses-generated.ts'), usesGenerated);
    ok(dir, process.execPath, [tsc, '-p', '.']);
    const [names, json] = node(dir, '--import', 'tsx', 'main.ts').trim().split('\n');
    expect(JSON.parse(names)).toEqual(JSON.parse(fs.readFileSync(path.join(golden, 'case.json'), 'utf8')).param_names);
    const r = JSON.parse(json);
    expect(r.val).toBeGreaterThan(0.7);
    expect(r.classes).toHaveLength(2);
  });

  // npm init's "type": "commonjs" makes model.ts a CommonJS module under tsx while an .mts script is an ES
  // module: imported after tensorkiln, the model meets the script's copy (one tracer, one nn.Module) and trains;
  // imported before, tsx gives it a copy of its own, and the trace says so instead of "only while tracing".
  it('an .mts script of a CommonJS project traces and trains its model.ts; importing the model first is named', () => {
    const dir = path.join(app, 'mixed');
    write(path.join(dir, 'model.ts'), MODEL);
    const script = api.replace("import { Net } from './model.js';", "import { Net } from './model.ts';") + 'await main();\n';
    write(path.join(dir, 'main.mts'), script);
    const [names, json] = node(dir, '--import', 'tsx', 'main.mts').trim().split('\n');
    expect(JSON.parse(names)).toEqual(JSON.parse(fs.readFileSync(path.join(golden, 'case.json'), 'utf8')).param_names);
    expect(JSON.parse(json).val).toBeGreaterThan(0.7);
    write(path.join(dir, 'first.mts'), "import { Net } from './model.ts';\n" + script.replace("import { Net } from './model.ts';\n", ''));
    const r = run(dir, process.execPath, ['--import', 'tsx', 'first.mts']);
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("this model's tensorkiln is another copy than the one tracing it");
    expect(r.err).toContain("import 'tensorkiln' first");
  });

  // tsc --init's verbatimModuleSyntax leaves import syntax to ES modules: such a project is "type": "module".
  it("TypeScript under tsc --init's defaults, skipLibCheck off: compiles (declarations too) and runs in plain node", () => {
    const dir = path.join(app, 'ts-init');
    write(path.join(dir, 'package.json'), '{ "type": "module" }');
    ok(dir, process.execPath, [tsc, '--init']);
    const config = fs.readFileSync(path.join(dir, 'tsconfig.json'), 'utf8');
    expect(config).toMatch(/"skipLibCheck": true/);
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), config.replace(/"skipLibCheck": true/, '"skipLibCheck": false'));
    write(path.join(dir, 'model.ts'), MODEL);
    write(path.join(dir, 'uses-generated.ts'), usesGenerated);
    // run from app/ (as the CommonJS run), so the model's source lines and package match gen build's
    write(
      path.join(dir, 'eval.ts'),
      `import { loadWeights, openModel, evaluate, cifar2Data } from 'tensorkiln/api';

async function main(): Promise<void> {
  const model = await openModel({ file: 'model.ts', model: 'Net' }, { outDir: 'generated', log: (l) => console.error(l) });
  const info = loadWeights(model, 'runs/cjs.safetensors');
  console.log(JSON.stringify(evaluate(model, cifar2Data(undefined, info.normalization))));
}
await main();
`,
    );
    ok(dir, process.execPath, [tsc, '-p', '.']); // emits .js and .d.ts beside the sources
    expect(fs.readFileSync(path.join(dir, 'model.d.ts'), 'utf8')).toContain('conv1: import("tensorkiln").Conv2d;');
    const r = run(app, process.execPath, ['ts-init/eval.js']);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out).val).toBe(cjsVal);
  });
});

describe('the generated package alone (a copy of generated/net, no node_modules)', () => {
  const dir = path.join(tmp, 'standalone');
  beforeAll(() => fs.cpSync(path.join(app, 'generated/net'), path.join(dir, 'net'), { recursive: true }));

  it("equals PyTorch's golden case: Model.load, forward, one SGD step", () => {
    write(
      path.join(dir, 'golden.mjs'),
      `import { Model, readSafetensors } from './net/index.js';
const [dir] = process.argv.slice(2);
const io = readSafetensors(dir + '/io.safetensors').tensors;
const { lr } = JSON.parse((await import('node:fs')).readFileSync(dir + '/case.json', 'utf8')).train;
const worst = (a, b) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
const m = Model.load(dir + '/weights.safetensors');
const x = io.get('x').data;
const batch = io.get('labels').shape[0];
const logits = worst(m.eval().forward(x, batch), io.get('logits_eval').data);
const loss = Math.abs(m.train().trainStep(x, Int32Array.from(io.get('labels').data, Number), batch, { lr }) - io.get('loss').data[0]);
let after = 0;
for (const [k, t] of m.stateDict()) after = Math.max(after, worst(t.data, io.get('after.' + k).data));
console.log(JSON.stringify({ logits, loss, after }));
`,
    );
    const r = JSON.parse(node(dir, 'golden.mjs', golden));
    console.log('generated package vs PyTorch, worst absolute errors:', r);
    expect(r.logits).toBeLessThan(1e-5);
    expect(r.loss).toBeLessThan(1e-5);
    expect(r.after).toBeLessThan(1e-6);
  });

  it('starts from build/init.safetensors, trains, saves, reloads (ESM and CJS) and predicts; errors name the file', () => {
    write(
      path.join(dir, 'train.mjs'),
      `import { Model, info } from './net/index.js';
const per = info.inputShape.reduce((a, b) => a * b);
const n = 32;
const x = new Float32Array(n * per);
const y = Int32Array.from({ length: n }, (_, i) => i % 2);
for (let i = 0; i < n; i++) for (let j = 0; j < per; j++) x[i * per + j] = (y[i] ? 0.5 : -0.5) + Math.sin(i * 7919 + j);
const m = new Model();
const start = m.stateDict().get('fc2.weight').data;
for (let s = 0; s < 20; s++) m.trainStep(x, y, n, { lr: 0.05, momentum: 0.9 });
m.save('trained.safetensors');
m.save('checkpoint.safetensors', { trainingState: true });
const again = Model.load('trained.safetensors');
const resumed = Model.load('checkpoint.safetensors');
const p = again.predict(x, n);
const errors = [];
for (const f of ['missing.safetensors', 'net/package.json']) try { Model.load(f); } catch (e) { errors.push(e.message); }
console.log(JSON.stringify({
  start: Array.from(start),
  same: Array.from(m.predict(x, n).probabilities).every((v, i) => v === p.probabilities[i]),
  correct: p.classes.filter((c, i) => c === y[i]).length,
  steps: [again.step, resumed.step],
  errors,
}));
`,
    );
    const r = JSON.parse(node(dir, 'train.mjs'));
    const init = loadSafetensors(path.join(dir, 'net/build/init.safetensors')).tensors.get('fc2.weight')!.data as Float32Array;
    expect(r.start).toEqual(Array.from(init));
    expect(r.start.some((v: number) => v !== 0)).toBe(true);
    expect(r.same).toBe(true);
    expect(r.correct).toBe(32);
    expect(r.steps).toEqual([0, 20]);
    expect(r.errors[0]).toMatch(/^missing\.safetensors: no such file/);
    expect(r.errors[1]).toMatch(/^net\/package\.json: header length \d+ runs past the end of the file/);
    const saved = loadSafetensors(path.join(dir, 'trained.safetensors')).tensors;
    expect([...saved.keys()]).toEqual(JSON.parse(fs.readFileSync(path.join(golden, 'case.json'), 'utf8')).param_names);

    write(
      path.join(dir, 'predict.cjs'),
      "const { Model } = require('./net/index.js');\nconsole.log(Model.load('trained.safetensors').predict(new Float32Array(3072), 1).classes.length);\n",
    );
    expect(node(dir, 'predict.cjs').trim()).toBe('1');
    fs.rmSync(path.join(dir, 'net/build/init.safetensors'));
    write(path.join(dir, 'fresh.mjs'), "import { Model } from './net/index.js';\nnew Model();\n");
    const fresh = run(dir, process.execPath, ['fresh.mjs']);
    expect(fresh.code).toBe(1);
    expect(fresh.err).toMatch(/Net: no initial weights at .*net\/build\/init\.safetensors \(gen build writes them\)/);
  });
});
