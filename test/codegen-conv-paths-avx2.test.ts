// The tuned conv paths again with the AVX2 kernels (TK_MARCH=x86-64-v3: 8-lane
// vectors, so other shapes pack rows and other remainders appear): each path
// must be exact on both ISAs. The build's -march is read when the code
// generator loads, so the variable is set before the checks are imported.
import fs from 'node:fs';
import { describe, it } from 'vitest';

const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
const avx2 = /^flags\s*:.*\bavx2\b.*\bfma\b|^flags\s*:.*\bfma\b.*\bavx2\b/m.test(cpuinfo);

if (avx2) {
  process.env.TK_MARCH = 'x86-64-v3';
  await import('./codegen-conv-paths.test.js');
} else {
  describe('conv paths on AVX2', () => it.skip('this CPU has no AVX2 + FMA', () => {}));
}
