import { describe, expect, it } from 'vitest';
import { batches, makeDataset, shuffledOrder, type Dataset } from '../src/data/loader.ts';
import { Rng } from '../src/util/rng.ts';

const IMAGE = 3072;

/** n images; every value of image i is i, and its label is i % 2. */
function indexDataset(n: number): Dataset {
  const x = new Float32Array(n * IMAGE);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    x.fill(i, i * IMAGE, (i + 1) * IMAGE);
    y[i] = i % 2;
  }
  return { x, y, n, shape: [3, 32, 32] };
}

/** The image indices visited by one pass, checking that x and y agree. */
function visit(ds: Dataset, batchSize: number, rng?: Rng): { order: number[]; sizes: number[] } {
  const order: number[] = [];
  const sizes: number[] = [];
  for (const b of batches(ds, batchSize, { shuffle: rng !== undefined, rng })) {
    expect(b.x.length).toBe(b.size * IMAGE);
    expect(b.y.length).toBe(b.size);
    for (let i = 0; i < b.size; i++) {
      const idx = b.x[i * IMAGE];
      if (b.x[(i + 1) * IMAGE - 1] !== idx || b.y[i] !== idx % 2) throw new Error(`batch row ${i} mixes images`);
      order.push(idx);
    }
    sizes.push(b.size);
  }
  return { order, sizes };
}

describe('batches', () => {
  const ds = indexDataset(10000);

  it('gives 156 full batches of 64 and keeps the last 16', () => {
    const { order, sizes } = visit(ds, 64, new Rng(1));
    expect(sizes.length).toBe(157);
    expect(sizes.slice(0, 156).every((s) => s === 64)).toBe(true);
    expect(sizes[156]).toBe(16);
    // A permutation: every index exactly once.
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 10000 }, (_, i) => i));
    expect(order.slice(0, 10)).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('is in dataset order without shuffling', () => {
    const { order, sizes } = visit(indexDataset(10), 4);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('repeats an order for the same seed and changes it for another seed', () => {
    const a = visit(ds, 64, new Rng(7)).order;
    expect(visit(ds, 64, new Rng(7)).order).toEqual(a);
    expect(visit(ds, 64, new Rng(8)).order).not.toEqual(a);
    // The order is the rng's permutation, drawn once per pass.
    expect(Array.from(shuffledOrder(10000, new Rng(7)))).toEqual(a);
    const rng = new Rng(7);
    expect(visit(ds, 64, rng).order).toEqual(a);
    expect(visit(ds, 64, rng).order).not.toEqual(a);
  });

  it('draws the order when called, not when first iterated', () => {
    const rng = new Rng(3);
    const first = batches(ds, 64, { shuffle: true, rng });
    const after = rng.state;
    const expected = new Rng(3);
    expected.permutation(10000);
    expect(after).toEqual(expected.state);
    expect(first.next().done).toBe(false);
  });

  it('reuses one batch buffer', () => {
    const it = batches(indexDataset(8), 4);
    const a = it.next().value;
    const b = it.next().value;
    expect(a && b && a.x.buffer === b.x.buffer).toBe(true);
  });

  it('handles a batch larger than the dataset', () => {
    expect(visit(indexDataset(3), 64, new Rng(0)).sizes).toEqual([3]);
  });

  it('rejects a bad batch size and shuffling without a seeded rng', () => {
    expect(() => batches(ds, 0)).toThrow(/positive integer, got 0/);
    expect(() => batches(ds, 64, { shuffle: true })).toThrow(/needs a seeded rng/);
  });
});

describe('makeDataset', () => {
  it('normalises bytes and widens labels', () => {
    const images = new Uint8Array(2 * IMAGE).fill(255);
    const ds = makeDataset(
      { images, labels: new Int32Array([1, 0]), shape: [3, 32, 32] },
      { mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 0.5] },
    );
    expect(ds.n).toBe(2);
    expect(ds.shape).toEqual([3, 32, 32]);
    expect(Array.from(ds.y)).toEqual([1, 0]);
    expect([ds.x[0], ds.x[1024], ds.x[2 * IMAGE - 1]]).toEqual([1, 2, 1]);
    expect(() => makeDataset({ images, labels: new Int32Array(3), shape: [3, 32, 32] }, { mean: [0, 0, 0], std: [1, 1, 1] })).toThrow(
      /expected 9216/,
    );
  });
});
