// Every model of the zoo trains with `gen train` on real images: the CIFAR-10
// format airplanes and birds of ../shared (ten classes, two present) for the
// 3×32×32 models, Debian's Fashion-MNIST for LeNet-5 (skipped without it).
// Eight epochs on 256 images must bring the loss down and beat chance.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { zooModels } from '../models/zoo.js';
import { FASHION_DIR } from './fixtures/data-files.js';

const root = path.resolve(import.meta.dirname, '..');
const cifar = path.resolve(root, '../shared/data/cifar10');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-zoo-train-'));

function train(model: string, data: string) {
  const args = ['train', path.join(root, 'models/zoo.ts'), '--model', model, '--data', data, '--limit', '256', '--epochs', '8'];
  // run in a scratch folder: the packages go to its generated/
  return spawnSync(process.execPath, [path.join(root, 'bin/gen.js'), ...args, '--lr', '0.01', '--momentum', '0.9', '--json'], {
    cwd: out,
    encoding: 'utf8',
  });
}

const cases = Object.entries(zooModels).map(([name, M]) => {
  const shape = (M as { inputShape?: number[] }).inputShape ?? [3, 32, 32];
  return [name, shape[0] === 1 ? `fashion-mnist:${FASHION_DIR}` : `cifar10:${cifar}`] as const;
});

describe('the zoo trains with gen train', () => {
  it.each(cases)('%s', (name, data) => {
    if (data.startsWith('fashion-mnist') && !fs.existsSync(FASHION_DIR))
      return console.log(`skipped ${name}: no ${FASHION_DIR} (apt-get install dataset-fashion-mnist)`);
    const r = train(name, data);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { losses: number[]; trainAccuracy: number };
    expect(j.losses).toHaveLength(8);
    expect(j.losses.every(Number.isFinite)).toBe(true);
    expect(j.losses[7]).toBeLessThan(0.8 * j.losses[0]);
    // above chance: two classes present in the CIFAR-10 files, ten in Fashion-MNIST
    expect(j.trainAccuracy).toBeGreaterThan(data.startsWith('cifar10') ? 0.5 : 0.3);
  });
});
