// Per-class accuracy and confusion matrices (hand-computed), top-k predictions,
// and class names kept in checkpoints.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cifar2Data } from '../src/api/data.ts';
import { confusionMatrix, evaluate, evaluateReport, splitReport } from '../src/api/evaluate.ts';
import { openModule } from '../src/api/open.ts';
import { loadWeights, predict, saveWeights, train } from '../src/api/workflow.ts';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.ts';
import { Net } from '../models/book.ts';
import { Net10 } from './fixtures/data-models.ts';
import { repoFile, tmpDir } from './fixtures/data-files.ts';

describe('confusionMatrix / splitReport', () => {
  it('counts true class by predicted class, and per-class accuracy is the diagonal over the row', () => {
    const labels = [0, 0, 0, 1, 1, 2, 2, 2, 2];
    const predicted = [0, 1, 0, 1, 2, 2, 2, 0, 2];
    expect(confusionMatrix(labels, predicted, 3)).toEqual([
      [2, 1, 0],
      [0, 1, 1],
      [1, 0, 3],
    ]);
    const r = splitReport(labels, predicted, ['a', 'b', 'c', 'd']);
    expect(r.accuracy).toBeCloseTo(6 / 9, 12);
    expect(r.perClass).toEqual([
      { className: 'a', n: 3, accuracy: 2 / 3 },
      { className: 'b', n: 2, accuracy: 1 / 2 },
      { className: 'c', n: 4, accuracy: 3 / 4 },
      { className: 'd', n: 0, accuracy: null }, // no images of d: no accuracy, not 0
    ]);
  });

  it('rejects labels or predictions outside the classes', () => {
    expect(() => confusionMatrix([0, 3], [0, 0], 3)).toThrow('confusionMatrix: image 1 has label 3 and prediction 0, not both in 0-2');
    expect(() => confusionMatrix([0], [0, 1], 3)).toThrow('1 labels but 2 predictions');
  });
});

describe('evaluateReport / predict on a trained model', () => {
  const data = cifar2Data();
  const small = { ...data, val: { ...data.val, n: 300, x: data.val.x.subarray(0, 300 * 3072), y: data.val.y.subarray(0, 300) } };

  it('matches the model itself, image by image', async () => {
    const model = await openModule(new Net(), { backend: 'interp' });
    const both = { ...small, train: small.val };
    const r = evaluateReport(model, both);
    model.eval();
    const m = [
      [0, 0],
      [0, 0],
    ];
    for (let i = 0; i < 300; i++) {
      const [a, b] = model.forward(small.val.x.subarray(i * 3072, (i + 1) * 3072), 1);
      m[small.val.y[i]][b > a ? 1 : 0]++;
    }
    expect(r.val.confusion).toEqual(m);
    expect(r.val.accuracy).toBeCloseTo((m[0][0] + m[1][1]) / 300, 12);
    expect(r.val.perClass.map((c) => c.n)).toEqual([m[0][0] + m[0][1], m[1][0] + m[1][1]]);
    expect(evaluate(model, both).val).toBe(r.val.accuracy);
  });

  it('--top ranks every class by probability, label and name', async () => {
    const model = await openModule(new Net10(), { backend: 'interp' });
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    const img = repoFile('examples/images/bird.png');
    const [p] = predict(model, [img], { normalization: data.normalization, classes: names }, { top: 10 });
    const byProb = p.probabilities.map((v, i) => [v, i] as const).sort((x, y) => y[0] - x[0]);
    expect(p.top.map((t) => t.label)).toEqual(byProb.map(([, i]) => i));
    expect(p.top.map((t) => t.className)).toEqual(byProb.map(([, i]) => names[i]));
    expect(p.top[0].label).toBe(p.label);
    expect(p.probabilities.reduce((a, b) => a + b)).toBeCloseTo(1, 6);
    expect(predict(model, [img], { normalization: data.normalization })[0].className).toBe(String(p.label)); // no names: label numbers
    expect(() => predict(model, [img], { normalization: data.normalization }, { top: 11 })).toThrow('top must be an integer in 1..10');
    expect(() => predict(model, [img], { normalization: data.normalization, classes: ['x'] })).toThrow(
      'Net10 outputs 10 classes but 1 class names were given',
    );
    expect(() => predict(model, [img], {})).toThrow(/predict needs the training normalisation/);
  });
});

describe('class names in checkpoints', () => {
  it('train saves them; a resume on other classes is refused; malformed metadata is named', async () => {
    const dir = tmpDir('tk-ck-');
    const ck = path.join(dir, 'ck.safetensors');
    const d = cifar2Data();
    const cut = (s: typeof d.train) => ({ ...s, n: 64, x: s.x.subarray(0, 64 * 3072), y: s.y.subarray(0, 64) });
    const data = { ...d, train: cut(d.train), val: cut(d.val) };
    const model = await openModule(new Net(), { backend: 'interp' });
    const opts = { epochs: 1, batchSize: 32, lr: 1e-2, seed: 0 };
    await train(model, data, { ...opts, save: ck });
    expect(loadWeights(model, ck).classes).toEqual(['airplane', 'bird']);
    await expect(train(model, { ...data, classes: ['bird', 'airplane'] }, { ...opts, epochs: 2, resume: ck })).rejects.toThrow(
      /ck\.safetensors was trained on classes airplane, bird, not bird, airplane/,
    );
    const bad = loadSafetensors(ck);
    saveSafetensors(path.join(dir, 'bad.safetensors'), bad.tensors, { ...bad.metadata, classes: '[1, 2]' });
    expect(() => loadWeights(model, path.join(dir, 'bad.safetensors'))).toThrow(
      /bad\.safetensors: metadata 'classes' is malformed: \[1,2\]/,
    );
    saveSafetensors(path.join(dir, 'bad2.safetensors'), bad.tensors, { ...bad.metadata, normalization: '{"mean":[0.5],"std":[]}' });
    expect(() => loadWeights(model, path.join(dir, 'bad2.safetensors'))).toThrow(/metadata 'normalization' is malformed/);
    saveWeights(model, path.join(dir, 'w.safetensors'), data, 1);
    expect(loadWeights(model, path.join(dir, 'w.safetensors'))).toEqual({
      normalization: data.normalization,
      classes: ['airplane', 'bird'],
    });
    expect(fs.existsSync(ck)).toBe(true);
  });
});
