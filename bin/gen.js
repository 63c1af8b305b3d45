#!/usr/bin/env node
// The `gen` command. Installed from npm it runs the compiled dist/; in a checkout of the
// repository (src/ present) it runs the TypeScript sources through tsx, with the
// checkout's tsconfig mapping 'tensorkiln' to src/ so user models share its classes.
import fs from 'node:fs';
import { fileURLToPath, URL } from 'node:url';

const src = new URL('../src/cli/main.ts', import.meta.url);
if (fs.existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
  await import(src.href);
} else await import('../dist/cli/main.js');
