// The README's runnable API example and demo images stay working.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

it('examples/train-api.ts trains, saves, reloads and predicts', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'examples/train-api.ts', '1'], { cwd: root, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/Epoch 1, Training loss 0\.\d+/);
  const acc = /trained 1 epochs in [\d.]+ s: train (0\.\d+), val (0\.\d+)/.exec(r.stdout)!;
  expect(Number(acc[2])).toBeGreaterThan(0.7); // one epoch of the book's Net already separates the classes
  expect(r.stdout).toMatch(new RegExp(`reloaded: \\{ train: ${acc[1].replace(/0+$/, '')}\\d*, val: ${acc[2].replace(/0+$/, '')}`));
  expect(r.stdout).toMatch(/airplane\.png: (airplane|bird) \(0\.\d{3}, 0\.\d{3}\)/);
});
