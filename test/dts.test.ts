// The generated index.d.ts (CPU and CUDA wrappers) type-checks under the strictest
// settings a user may have, with skipLibCheck off, and describes index.js: every
// member the wrapper defines is declared, and the other way round.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { emitDts } from '../src/codegen/dts.js';
import { baseView, CODEGEN_VERSION } from '../src/codegen/cpu/emit.js';
import { render } from '../src/codegen/templates.js';
import { trace } from '../src/graph/trace.js';
import * as tensorkiln from '../src/index.js';
import { activationModules } from '../src/ops/unary.js';
import { bookModels } from '../models/book.js';

const USE = `import { Model, create, info, readSafetensors, writeSafetensors, INIT_WEIGHTS, type SgdOptions } from './index.js';
const m: Model = create({ maxBatch: 4, seed: 1, weights: null });
const n = Model.load(INIT_WEIGHTS, { maxBatch: info.maxBatch });
const opts: SgdOptions = { lr: 0.1, momentum: undefined };
const x = new Float32Array(4 * info.inputShape[0] * info.inputShape[1] * info.inputShape[2]);
const loss: number = m.train().trainStep(x, new Int32Array(4), 4, opts);
const { classes, probabilities } = n.predict(x, 4);
m.save('a.safetensors', { trainingState: true, metadata: { note: 'x' } });
const meta: Record<string, string> = m.loadWeights('a.safetensors');
writeSafetensors('b.safetensors', m.stateDict(), meta);
const first: number | undefined = classes[0];
export const out = [loss, first, probabilities.length, readSafetensors('b.safetensors').tensors.size, info.classes satisfies 2];
`;

function check(dts: string): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-dts-'));
  fs.writeFileSync(path.join(dir, 'index.d.ts'), dts);
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }');
  fs.writeFileSync(path.join(dir, 'use.ts'), USE);
  const program = ts.createProgram([path.join(dir, 'use.ts')], {
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    verbatimModuleSyntax: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
    skipLibCheck: false,
    noEmit: true,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

/** Values a module exports (interfaces aside) and the members of its class Model. */
function surface(source: string, file: string): string[] {
  const f = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022);
  const out: string[] = [];
  for (const s of f.statements) {
    if (!ts.getModifiers(s as ts.HasModifiers)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
    if (ts.isVariableStatement(s)) for (const d of s.declarationList.declarations) out.push(d.name.getText(f));
    else if ((ts.isFunctionDeclaration(s) || ts.isClassDeclaration(s)) && s.name) out.push(s.name.text);
    if (ts.isClassDeclaration(s))
      for (const m of s.members) {
        const static_ = ts.getModifiers(m as ts.HasModifiers)?.some((k) => k.kind === ts.SyntaxKind.StaticKeyword);
        if (m.name && !m.name.getText(f).startsWith('_')) out.push(`${static_ ? 'static ' : ''}Model.${m.name.getText(f)}`);
      }
  }
  return [...new Set(out)].sort();
}

describe('generated index.d.ts', () => {
  const graph = trace(new bookModels.Net());
  for (const cuda of [false, true]) {
    const dts = emitDts(graph, 'tk_net', CODEGEN_VERSION, cuda);
    it(`${cuda ? 'CUDA' : 'CPU'}: type-checks under strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess`, () => {
      expect(check(dts)).toEqual([]);
    });

    it(`${cuda ? 'CUDA' : 'CPU'}: declares what index.js defines`, () => {
      const js = render('js/index.js.hbs', { ...baseView(graph, 'net', 2), cuda, infoJson: '{}' });
      const fields = ['Model.seed', 'Model.step', 'Model.lastCorrect']; // set in the constructor
      expect(surface(dts, 'index.d.ts')).toEqual([...surface(js, 'index.js'), ...fields].sort());
    });
  }
});

describe("the package's declarations", () => {
  it("name every nn layer class at the top level, so a user's declaration emit can name model fields", () => {
    const made = new Set<unknown>(Object.values(activationModules)); // built from a table; their instances are typed Module
    const classes = Object.entries(tensorkiln.nn).filter(
      ([, v]) => typeof v === 'function' && (v as { prototype?: unknown }).prototype instanceof tensorkiln.Module && !made.has(v),
    );
    expect(classes.length).toBeGreaterThan(10);
    for (const [name, cls] of classes) expect((tensorkiln as Record<string, unknown>)[name], name).toBe(cls);
  });
});
