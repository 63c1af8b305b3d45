// Finds where in the user's model file an op was written, from the stack.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** tensorkiln's own source folder (src/ or dist/): its frames are never the user's. */
const libDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

/** 'models/book.ts:42' for the innermost stack frame outside tensorkiln and node internals. */
export function callerSource(): string {
  const stack = new Error().stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?[^()\s]+):(\d+):(\d+)\)?\s*$/.exec(line.trim());
    if (!m) continue;
    let file = m[1];
    if (file.startsWith('file://')) file = fileURLToPath(file);
    if (file.startsWith('node:') || file.includes('node_modules') || !path.isAbsolute(file)) continue;
    if (file.startsWith(libDir + path.sep)) continue;
    return `${path.relative(process.cwd(), file) || file}:${m[2]}`;
  }
  return '<unknown>';
}
