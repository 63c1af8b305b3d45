// tools/gpu-node.ts is carried to a GPU machine that has no npm: its bundle must load
// with nothing but Node (no node_modules beside it) and fail cleanly without a GPU.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundle } from '../tools/gpu-node.js';

describe('the GPU Node check bundle', () => {
  it('loads without node_modules and reports a missing package as an error, not a crash', { timeout: 600_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-gpu-node-'));
    const file = path.join(dir, 'gpu-node.mjs');
    await bundle(file);
    const usage = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8' });
    expect(usage.status, usage.stderr).toBe(2);
    expect(usage.stderr).toMatch(/^usage: /);
    fs.mkdirSync(path.join(dir, 'golden/extra'), { recursive: true });
    fs.cpSync(
      path.resolve(import.meta.dirname, 'fixtures/golden-extra/NetResDeep_steps20'),
      path.join(dir, 'golden/extra/NetResDeep_steps20'),
      {
        recursive: true,
      },
    );
    const run = spawnSync(process.execPath, [file, 'run', path.join(dir, 'out')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, TK_NODE_EPOCHS: '0' },
    });
    expect(run.status).toBe(1);
    const report = fs.readFileSync(path.join(dir, 'out/node-report.md'), 'utf8');
    expect(report).toMatch(/NetResDeep_steps20: ERROR .*pkg\/netresdeep_\w+\/cuda is not a CUDA package/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
