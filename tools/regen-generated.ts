// Rewrites the committed generated/<name>/ sources of the book's models from the
// generator as it is now (test/codegen.test.ts fails when they are out of date).
// npx tsx tools/regen-generated.ts
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bookModels } from '../models/book.js';
import { generatePackage } from '../src/codegen/build.js';
import { trace } from '../src/graph/trace.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const name of Object.keys(bookModels) as (keyof typeof bookModels)[]) {
  const files = generatePackage(trace(new bookModels[name]()), name.toLowerCase(), 256, { file: 'models/book.ts', model: name });
  for (const [rel, content] of files) {
    const f = path.join(root, 'generated', name.toLowerCase(), rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, content);
  }
  console.log(`generated/${name.toLowerCase()}: ${files.size} files`);
}
