"""PyTorch 1.13 comparator for bench/run.ts: the same models (tools/book_models.py,
tools/zoo_models.py), the same CIFAR-2 batches (float32 files written by run.ts,
one per input shape), on the number of threads given.
    torch_bench.py <spec.json> <n> <reps> <threads>
spec.json: [{"model": name, "file": path, "shape": [C, H, W]}, ...].
Prints one JSON line per model: train img/s (batch 64, SGD), eval img/s (batch
256), batch-1 latency (ms), each the median of repeated timings."""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import book_models  # noqa: E402
import zoo_models  # noqa: E402


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def bench(name, x, y, reps):
    n = len(y)
    torch.manual_seed(0)
    model = getattr(book_models, name, None) or getattr(zoo_models, name)
    model = model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    nb = n // 64
    model.train()

    def step(i):
        b = i % nb
        out = model(x[b * 64 : (b + 1) * 64])
        loss = loss_fn(out, y[b * 64 : (b + 1) * 64])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    train = []
    for r in range(reps):
        t = time.perf_counter()
        for i in range(8):
            step(i)
        train.append(8 * 64 / (time.perf_counter() - t))
    model.eval()
    ev = []
    with torch.no_grad():
        model(x[:256])
        for r in range(reps):
            t = time.perf_counter()
            for i in range(4):
                b = i % (n // 256)
                model(x[b * 256 : (b + 1) * 256])
            ev.append(4 * 256 / (time.perf_counter() - t))
        lat = []
        for i in range(300):
            t = time.perf_counter()
            model(x[i % n : i % n + 1])
            lat.append((time.perf_counter() - t) * 1000)
    return {"model": name, "train": median(train), "eval": median(ev), "latency_ms": median(lat)}


def main():
    spec_file, n, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    for s in json.load(open(spec_file)):
        c, h, w = s["shape"]
        raw = np.fromfile(s["file"], dtype=np.float32)
        x = torch.from_numpy(raw[: n * c * h * w].reshape(n, c, h, w).copy())
        y = torch.from_numpy(raw[n * c * h * w : n * c * h * w + n].astype(np.int64))
        print(json.dumps(bench(s["model"], x, y, reps)), flush=True)


main()
