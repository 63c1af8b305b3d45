// The README's API example: build the book's Net, train it on the shipped
// CIFAR-2 sample, evaluate, save, reload and predict.
//   npx tsx examples/train-api.ts [epochs]
import { manualSeed } from 'tensorkiln';
import { cifar2Data, evaluate, loadWeights, openModule, predict, saveWeights, train } from 'tensorkiln/api';
import { Net } from '../models/book.ts';

const epochs = Number(process.argv[2] ?? 20);
manualSeed(0);
const model = await openModule(new Net(), { backend: 'cpu', name: 'net' }); // generated/net, built or cached
const data = cifar2Data(); // the shipped sample, normalised with its training set's mean and std
const r = await train(model, data, { epochs, batchSize: 64, lr: 1e-2, seed: 0, log: console.log });
console.log(`trained ${epochs} epochs in ${r.seconds.toFixed(1)} s: train ${r.trainAccuracy.toFixed(3)}, val ${r.valAccuracy.toFixed(3)}`);

saveWeights(model, 'runs/api-net.safetensors', data, epochs); // with the normalisation and class names
const again = await openModule(new Net(), { backend: 'cpu', name: 'net' });
const info = loadWeights(again, 'runs/api-net.safetensors');
console.log('reloaded:', evaluate(again, cifar2Data(undefined, info.normalization)));
for (const p of predict(again, ['examples/images/airplane.png', 'examples/images/bird.png'], info))
  console.log(`${p.file}: ${p.className} (${p.probabilities.map((v) => v.toFixed(3)).join(', ')})`);
