#!/usr/bin/env node
// The `gen` command: registers tsx so the CLI and users' model.ts files load as TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
