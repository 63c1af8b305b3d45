// Builds CPU packages with another checkout's generator, for bench/run.ts --before:
//   cd <checkout> && tsx <this file> <checkout> <outRoot> Net,ResNet20,...
// Run with the checkout as the working directory, so its tsconfig maps 'tensorkiln'
// to its own sources. Prints one JSON line: { <model>: <package dir> }.
import path from 'node:path';

const [checkout, outRoot, names] = process.argv.slice(2);
const src = (f: string) => import(path.join(checkout, f));
const { buildPackage } = await src('src/codegen/build.ts');
const { trace } = await src('src/graph/trace.ts');
const { bookModels } = await src('models/book.ts');
const { zooModels } = await src('models/zoo.ts');
const dirs: Record<string, string> = {};
for (const name of names.split(',')) {
  const M = bookModels[name] ?? zooModels[name];
  if (!M) throw new Error(`${checkout} has no model ${name}`);
  const model = new M();
  dirs[name] = buildPackage(trace(model), { outRoot, name: `${name.toLowerCase()}_before`, initialState: model.stateDict() }).dir;
}
process.stdout.write(JSON.stringify(dirs) + '\n');
