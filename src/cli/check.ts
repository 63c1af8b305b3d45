// gen check: run a PyTorch golden case (see ../shared/golden/README.md) on a backend
// and print the worst error per tensor; exit 0 only when every tensor is within tolerance.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { formatReport, listGoldenCases, runGoldenCase, saveGoldenDump, type GoldenReport } from '../check/golden.js';
import { backendFactory } from './backends.js';
import { example } from './help.js';

interface CheckOptions {
  model?: string;
  golden: string;
  backend: string;
  dump?: string;
  json?: boolean;
  args?: string;
}

export function register(program: Command): void {
  example(
    program.command('check <model.ts>').description('compare a backend with a PyTorch golden case (or a folder of cases)'),
    'gen check model.ts --golden golden/Net --backend cpu',
  )
    .option('--model <Name>', "model class; must match the case (default: the case's own)")
    .requiredOption('--golden <caseDir>', 'a case folder (case.json, weights.safetensors, io.safetensors), or a folder of them')
    .option('--backend <name>', 'interp | cpu | cuda | cuda-emu (the CUDA kernels on the CPU emulator)', 'interp')
    .option('--dump <out.safetensors>', 'write every computed tensor under io.safetensors names (one case only)')
    .option('--args <json>', 'ignored: a case carries its own constructor arguments')
    .option('--json', 'print the reports as JSON')
    .action(async (file: string, o: CheckOptions) => {
      const cases = fs.existsSync(path.join(o.golden, 'case.json')) ? [o.golden] : listGoldenCases(o.golden);
      if (!cases.length) throw new Error(`${o.golden}: no case.json here or in its subfolders`);
      if (o.dump && cases.length > 1) throw new Error('--dump takes one case, not a folder of them');
      const factory = await backendFactory(o.backend);
      const reports: GoldenReport[] = [];
      for (const dir of cases) {
        const json = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8')) as { model: string };
        if (o.model && o.model !== json.model) throw new Error(`${dir} is a case of ${json.model}, not ${o.model}`);
        const r = await runGoldenCase(dir, factory, { modelFile: file, dump: Boolean(o.dump) });
        reports.push(r);
        if (o.dump) saveGoldenDump(r, o.dump);
        if (!o.json) process.stdout.write(formatReport(r) + '\n');
      }
      if (o.json)
        process.stdout.write(
          JSON.stringify(
            reports.map(({ computed: _c, ...r }) => r),
            null,
            2,
          ) + '\n',
        );
      if (reports.some((r) => !r.pass)) process.exitCode = 1;
    });
}
