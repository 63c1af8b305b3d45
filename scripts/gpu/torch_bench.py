#!/usr/bin/env python3
"""PyTorch baseline for scripts/gpu-check.sh: the book's models (tools/book_models.py)
trained on CIFAR-2 on the same GPU, same data and normalisation, batch 64, lr 1e-2,
plain SGD, CrossEntropyLoss; the dataset is resident on the GPU (a fast baseline:
no DataLoader, the loss is summed on the device, one sync per epoch).

Prints one line per run:
  TORCH model=<m> mode=<eager|compile> epochs=<n> train_s=<s> per100_s=<s> img_per_s=<n> loss_last=<x> val_acc=<x>
and NOTE lines. Each run stops at the end of the epoch that passes --budget seconds;
per100_s then extrapolates to 100 epochs (stated in a NOTE).
"""
import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tools'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import book_models  # noqa: E402


def read_split(paths):
    imgs, labels = [], []
    for p in paths:
        raw = np.fromfile(p, dtype=np.uint8)
        if raw.size % 3073:
            raise SystemExit(f'{p}: not a CIFAR-10 binary batch')
        raw = raw.reshape(-1, 3073)
        keep = (raw[:, 0] == 0) | (raw[:, 0] == 2)
        raw = raw[keep]
        imgs.append(raw[:, 1:])
        labels.append((raw[:, 0] == 2).astype(np.int64))
    return np.concatenate(imgs), np.concatenate(labels)


def load(data_dir, device):
    xtr, ytr = read_split([os.path.join(data_dir, f'data_batch_{i}.bin') for i in range(1, 6)])
    xva, yva = read_split([os.path.join(data_dir, 'test_batch.bin')])
    ftr = xtr.reshape(-1, 3, 1024).astype(np.float32) / 255.0
    mean = ftr.transpose(1, 0, 2).reshape(3, -1).astype(np.float64).mean(axis=1)
    std = ftr.transpose(1, 0, 2).reshape(3, -1).astype(np.float64).std(axis=1, ddof=1)

    def norm(x):
        f = x.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
        return (f - mean.astype(np.float32)[None, :, None, None]) / std.astype(np.float32)[None, :, None, None]

    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return t(norm(xtr)), t(ytr), t(norm(xva)), t(yva)


def run(name, mode, x, y, xv, yv, epochs, budget, batch=64, lr=1e-2):
    device = x.device
    torch.manual_seed(0)
    model = getattr(book_models, name)().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    fwd = model
    compile_s = 0.0
    if mode == 'compile':
        fwd = torch.compile(model)

    def step(xb, yb):
        out = fwd(xb)
        loss = loss_fn(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    n = x.shape[0]
    # warm-up on a copy of the weights (context, cuDNN, compilation for both batch sizes), then restore
    state = {k: v.clone() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    for b in (batch, n % batch or batch):
        for _ in range(3):
            step(x[:b], y[:b])
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    model.load_state_dict(state)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    done = 0
    last = float('nan')
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        total = torch.zeros((), device=device)
        batches = 0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            total += step(x[idx], y[idx])
            batches += 1
        last = (total / batches).item()  # one sync per epoch
        done += 1
        if time.perf_counter() - t0 > budget:
            break
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = 0
        for i in range(0, xv.shape[0], 1000):
            correct += (model(xv[i:i + 1000]).argmax(1) == yv[i:i + 1000]).sum().item()  # eager: no recompilation for eval
    acc = correct / xv.shape[0]
    print(f'TORCH model={name} mode={mode} epochs={done} train_s={secs:.3f} per100_s={secs * 100 / done:.3f} '
          f'img_per_s={n * done / secs:.0f} loss_last={last:.4f} val_acc={acc:.4f} warmup_s={compile_s:.1f}', flush=True)
    if done < epochs:
        print(f'NOTE PyTorch {mode} {name}: stopped after {done} of {epochs} epochs (time budget {budget:.0f} s); '
              f'the 100-epoch time is extrapolated', flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', required=True)
    ap.add_argument('--epochs', type=int, default=100)
    ap.add_argument('--budget', type=float, default=300, help='seconds for all runs together')
    ap.add_argument('--models', default='Net,NetResDeep')
    ap.add_argument('--compile-models', default='Net', help="models also timed under torch.compile ('' for none)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print('NOTE PyTorch sees no CUDA device: no PyTorch timings', flush=True)
        return 0
    dev = torch.device('cuda')
    print(f'NOTE PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}; cudnn.benchmark={torch.backends.cudnn.benchmark}, '
          f'conv TF32={torch.backends.cudnn.allow_tf32}', flush=True)
    x, y, xv, yv = load(a.data, dev)
    models = a.models.split(',')
    # budget split: eager runs first (the comparison the report needs), torch.compile with what is left
    plan = [(m, 'eager') for m in models] + [(m, 'compile') for m in a.compile_models.split(',') if m]
    start = time.perf_counter()
    for i, (m, mode) in enumerate(plan):
        left = a.budget - (time.perf_counter() - start)
        share = left / (len(plan) - i)
        if mode == 'eager':
            share = max(share, min(left, a.budget * 0.3))
        if share < 5:
            print(f'NOTE PyTorch {mode} {m}: skipped, time budget spent', flush=True)
            continue
        try:
            run(m, mode, x, y, xv, yv, a.epochs, share)
        except Exception as e:  # noqa: BLE001 (report and go on)
            print(f'NOTE PyTorch {mode} {m} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
