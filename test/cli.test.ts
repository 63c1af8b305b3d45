// The `gen` command as a user runs it: real processes, real exit codes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';

const root = path.resolve(import.meta.dirname, '..');
const golden = path.resolve(root, '../shared/golden');

function gen(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/gen.js'), ...args], { cwd: root, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('gen inspect', () => {
  it('prints the per-parameter numel list and the total', () => {
    const r = gen('inspect', 'models/book.ts', '--model', 'Net');
    expect(r.code).toBe(0);
    expect(r.out).toContain('parameters: [432,16,1152,8,16384,32,64,2]');
    expect(r.out).toContain('total: 18090');
  });

  it('--json and --args', () => {
    const r = gen('inspect', 'models/book.ts', '--model', 'NetWidth', '--json');
    const j = JSON.parse(r.out);
    expect(j.total).toBe(38386);
    expect(j.params[0]).toEqual({ name: 'conv1.weight', shape: [32, 3, 3, 3], numel: 864 });
    const deep = JSON.parse(gen('inspect', 'models/book.ts', '--model', 'NetResDeep', '--args', '{"nBlocks":100}', '--json').out);
    expect(deep.total).toBe(75810);
    expect(deep.layers.filter((l: { op: string }) => l.op === 'conv2d').length).toBe(101);
  });

  it('user mistakes give one clear line and exit 1', () => {
    expect(gen('inspect', 'models/book.ts', '--model', 'Nope').err).toMatch(/exports no model 'Nope'; it exports: Net, /);
    expect(gen('inspect', 'models/missing.ts', '--model', 'Net').err).toMatch(/model file not found: models\/missing\.ts/);
    expect(gen('inspect', 'models/book.ts', '--model', 'NetWidth', '--args', '{nChans1').err).toMatch(/--args is not valid JSON/);
    const bad = gen('inspect', 'models/book.ts', '--model', 'Net', '--input', '3,16,16');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^gen: view\(-1, 512\) at models\/book\.ts:\d+: the input \[B, 8, 4, 4\] has 128 values per sample, not 512/);
    expect(bad.err).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('gen itself', () => {
  it('--version, and help with an example per verb', () => {
    expect(gen('--version').out.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
    const help = gen('--help').out;
    for (const verb of [
      'inspect',
      'graph',
      'build',
      'train',
      'eval',
      'predict',
      'show',
      'saliency',
      'attack',
      'compare',
      'check',
      'convert',
    ])
      expect(help).toMatch(new RegExp(`\\$ gen ${verb} `));
    expect(gen('train', '--help').out).toMatch(/Examples:\n {2}\$ gen train /);
  });

  it('--model may be left out when the file exports one model, and must be given when it exports several', () => {
    expect(gen('inspect', 'models/book.ts').err).toMatch(/exports 8 models \(Net, NetBatchNorm, .*\); pick one with --model <Name>/);
    expect(gen('inspect', 'test/fixtures/bn-first.ts').code).toBe(0);
  });

  const script = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!script)('escape codes go to a terminal only: none in redirected stdout, none with NO_COLOR or TERM=dumb', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-tty-')), 'out.txt');
    const train = `${process.execPath} bin/gen.js train models/book.ts --model Net --backend interp --epochs 2 --limit 16 > ${out}`;
    const terminal = (env: Record<string, string>) => {
      const { NO_COLOR: _, ...rest } = process.env;
      return spawnSync('script', ['-qec', train, '/dev/null'], { cwd: root, encoding: 'utf8', env: { ...rest, ...env } }).stdout;
    };
    const bar = terminal({ TERM: 'xterm' }); // stderr: the progress bar, redrawn
    expect(bar).toContain('\r\x1b[K');
    expect(bar).toMatch(/epoch 2\/2 \[=+\] ETA 0s \| \d+ img\/s \| loss \d\.\d{4}/);
    const lines = fs.readFileSync(out, 'utf8');
    expect(lines).toMatch(/Epoch 1, Training loss \d/);
    expect(lines).not.toContain('\x1b');
    expect(terminal({ NO_COLOR: '1', TERM: 'xterm' })).not.toContain('\x1b');
    expect(terminal({ TERM: 'dumb' })).not.toContain('\x1b');
  });
});

describe('gen train recipes: --augment, --val, --patience, --save-best', () => {
  const train = (...args: string[]) => gen('train', 'models/book.ts', '--model', 'Net', '--backend', 'interp', '--limit', '32', ...args);

  it('validates every epoch, stops early, saves the best epoch, and says so', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-recipe-'));
    const best = path.join(dir, 'best.safetensors');
    // lr 0: no epoch beats the first, so patience 1 stops after epoch 2
    const r = train('--epochs', '5', '--lr', '0', '--val', '0.25', '--patience', '1', '--save-best', best, '--augment', 'crop,flip');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Epoch 1, Training loss [\d.]+, Validation loss [\d.]+, accuracy [\d.]+\n/);
    expect(r.out).toMatch(/Early stop after epoch 2: validation loss has not improved for 1 epoch \(best: epoch 1, /);
    expect(r.out).toMatch(/Trained 2 epochs on 25 images \(7 held out for validation\)/);
    expect(r.out).toMatch(new RegExp(`Best validation epoch 1: loss [\\d.]+, accuracy [\\d.]+, saved to ${best}`));
    expect(fs.existsSync(best)).toBe(true);
    const j = JSON.parse(train('--epochs', '5', '--lr', '0', '--val', 'val', '--patience', '2', '--json').out);
    expect(j.epochs).toBe(3);
    expect(j.stoppedEpoch).toBe(3);
    expect(j.best.epoch).toBe(1);
  });

  it('bad recipe flags are one clear line and exit 1, before anything is built', () => {
    const err = (...a: string[]) => {
      const r = train(...a);
      expect(r.code).toBe(1);
      return r.err;
    };
    expect(err('--patience', '3')).toMatch(/^gen: --patience need a validation set: add --val <fraction\|val>/);
    expect(err('--save-best', 'b.safetensors')).toMatch(/--save-best need a validation set/);
    expect(err('--val', '1.5')).toMatch(/--val must be a fraction in \(0, 1\) .* got '1\.5'/);
    expect(err('--val', 'test')).toMatch(/--val must be a fraction/);
    expect(err('--val', 'val', '--patience', '0')).toMatch(/--patience must be a positive integer, got 0/);
    expect(err('--val', 'val', '--min-delta', '0.1')).toMatch(/--min-delta apply to --patience or --save-best/);
    expect(err('--val', 'val', '--patience', '2', '--monitor', 'lr')).toMatch(/--monitor must be loss or accuracy, got 'lr'/);
    expect(err('--val', 'val', '--patience', '2', '--min-delta', '-1')).toMatch(/--min-delta must be non-negative/);
    expect(err('--augment', 'rotate')).toMatch(/--augment rotate: unknown 'rotate'; expected crop/);
    const f = path.join(os.tmpdir(), `tk-same-${process.pid}.safetensors`);
    expect(err('--val', 'val', '--save', f, '--save-best', f)).toMatch(/saveBest and save are the same file/);
  });
});

describe('gen check', () => {
  it('passes every golden case on the interpreter', () => {
    const r = gen('check', 'models/book.ts', '--golden', golden, '--backend', 'interp');
    expect(r.code).toBe(0);
    expect(r.out.match(/^PASS /gm)?.length).toBe(
      fs.readdirSync(golden).filter((d) => fs.existsSync(path.join(golden, d, 'case.json'))).length,
    );
  });

  it('fails, with exit 1, when the reference disagrees', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-case-'));
    for (const f of ['case.json', 'weights.safetensors']) fs.copyFileSync(path.join(golden, 'Net', f), path.join(dir, f));
    const io = loadSafetensors(path.join(golden, 'Net', 'io.safetensors'));
    (io.tensors.get('logits_eval')!.data as Float32Array)[3] += 1e-3;
    saveSafetensors(path.join(dir, 'io.safetensors'), io.tensors, io.metadata);
    const r = gen('check', 'models/book.ts', '--golden', dir, '--dump', path.join(dir, 'out.safetensors'));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL .*logits_eval/);
    expect(r.out).toMatch(/logits_eval .* FAIL at \[3\]/);
    const dump = loadSafetensors(path.join(dir, 'out.safetensors')).tensors;
    expect(dump.has('grad.fc1.weight') && dump.has('after.conv1.bias') && dump.has('logits_eval_after')).toBe(true);
  });
});

describe('gen convert', () => {
  it('turns a torch.save state_dict into the same weights as safetensors', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tk-conv-')), 'net.safetensors');
    const r = gen('convert', 'test/fixtures/cli/net_golden.pt', out);
    expect(r.code).toBe(0);
    const got = loadSafetensors(out).tensors;
    const ref = loadSafetensors(path.join(golden, 'Net', 'weights.safetensors')).tensors;
    expect([...got.keys()]).toEqual([...ref.keys()]);
    for (const [k, t] of ref) expect(got.get(k)!.data).toEqual(t.data);
  });

  it('refuses a pickle that calls os.system, and writes nothing', () => {
    const out = path.join(os.tmpdir(), `tk-evil-${process.pid}.safetensors`);
    const r = gen('convert', 'test/fixtures/io/evil_system_zip.pt', out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/forbidden global 'posix\.system'/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('gen build', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tk-build-'));
  const nvcc = ['nvcc', '/usr/local/cuda/bin/nvcc'].some((c) => spawnSync(c, ['--version']).status === 0);

  it.skipIf(!nvcc)('--backend cuda compiles the CUDA package and its Node addon (no GPU needed); without a GPU, train says so', () => {
    const r = gen('build', 'models/book.ts', '--model', 'Net', '--backend', 'cuda', '--out', out);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/net\/cuda: CUDA package compiled/);
    expect(fs.existsSync(path.join(out, 'net/cuda/build/libtk_net_cuda.a'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'net/cuda/build/Release/tk_net_cuda.node'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'net/tk_net.cpp'))).toBe(false); // cuda only
    if (spawnSync('nvidia-smi', ['-L']).status === 0) return;
    const t = gen('train', 'models/book.ts', '--model', 'Net', '--backend', 'cuda', '--epochs', '1');
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/^gen: Net \(CUDA\): tk_net_cuda: no CUDA device available .*NVIDIA GPU and driver/m);
  });

  it('--backend cuda-emu builds for the CPU emulator (cached the second time), and gen train runs on it', () => {
    expect(gen('build', 'models/book.ts', '--model', 'Net', '--backend', 'cuda-emu', '--out', out).out).toMatch(
      /net\/cuda-emu: CUDA package compiled/,
    );
    expect(gen('build', 'models/book.ts', '--model', 'Net', '--backend', 'cuda-emu', '--out', out).out).toMatch(
      /net\/cuda-emu: CUDA package up to date \(cache hit\)/,
    );
    const t = gen('train', 'models/book.ts', '--model', 'Net', '--backend', 'cuda-emu', '--epochs', '1', '--limit', '64');
    expect(t.err).toBe('');
    expect(t.out).toMatch(/Epoch 1, Training loss 0\.\d+/);
    expect(t.out).toMatch(/Trained 1 epochs on 64 images .*backend cuda-emu, tk_cuda_emu \(CPU emulation\)\)/);
  });

  it('rejects an unknown backend', () => {
    expect(gen('build', 'models/book.ts', '--model', 'Net', '--backend', 'tpu', '--out', out).err).toMatch(
      /--backend must be cpu, cuda, cuda-emu or auto; got 'tpu'/,
    );
    expect(gen('train', 'models/book.ts', '--model', 'Net', '--backend', 'tpu').err).toMatch(
      /backend 'tpu' is not available; available: interp, cpu, cuda, cuda-emu/,
    );
  });
});
