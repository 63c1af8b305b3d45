"""PyTorch 1.13 side of bench/recipes.ts: the same model (tools/zoo_models.py),
the same initial weights (a safetensors file), the same normalised data (raw
float32/int32 files), the same recipe (optimizer, schedule, augmentation,
epochs, batch), 2 threads. Its own shuffles and augmentation draws (torch's
RNG): what is compared is the curve, not the bits. Prints one JSON object:
per epoch the mean training loss, the validation accuracy and the seconds of
the epoch's steps."""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import zoo_models  # noqa: E402

torch.set_num_threads(2)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for k, v in header.items():
        # tensorkiln's training state ("train.step", optimizer buffers) is not a module's state
        if k == "__metadata__" or k.startswith("train."):
            continue
        a, b = v["data_offsets"]
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(body[a:b], dtype=dt).reshape(v["shape"]).copy())
    return out


def augment(x, g, fill):
    """RandomCrop(size, padding=4) and RandomHorizontalFlip() per sample, as torchvision before
    Normalize: the padding is a black pixel, `fill` per channel once normalised."""
    b, c, h, w = x.shape
    p = torch.empty(b, c, h + 8, w + 8)
    p[:] = torch.tensor(fill).view(1, c, 1, 1)
    p[:, :, 4 : 4 + h, 4 : 4 + w] = x
    dy = torch.randint(0, 9, (b,), generator=g)
    dx = torch.randint(0, 9, (b,), generator=g)
    flip = torch.rand(b, generator=g) < 0.5
    out = torch.empty_like(x)
    for i in range(b):
        c = p[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = c.flip(-1) if flip[i] else c
    return out


def main():
    cfg = json.load(open(sys.argv[1]))
    shape = cfg["shape"]
    per = shape[0] * shape[1] * shape[2]
    d = cfg["dir"]
    xt = torch.from_numpy(np.fromfile(os.path.join(d, "train_x.f32"), dtype=np.float32).reshape(-1, *shape).copy())
    yt = torch.from_numpy(np.fromfile(os.path.join(d, "train_y.i32"), dtype=np.int32).astype(np.int64))
    xv = torch.from_numpy(np.fromfile(os.path.join(d, "val_x.f32"), dtype=np.float32).reshape(-1, *shape).copy())
    yv = torch.from_numpy(np.fromfile(os.path.join(d, "val_y.i32"), dtype=np.int32).astype(np.int64))
    assert xt.shape[0] * per == xt.numel()
    model = getattr(zoo_models, cfg["model"])(**cfg.get("args", {}))
    model.load_state_dict(load_safetensors(os.path.join(d, "init.safetensors")))
    o = cfg["optimizer"]
    if o["kind"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"], weight_decay=o["wd"])
    elif o["kind"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=o["lr"], weight_decay=o["wd"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], weight_decay=o["wd"])
    bs, epochs = cfg["batch"], cfg["epochs"]
    steps = math.ceil(xt.shape[0] / bs)
    sched = None
    if cfg.get("cosine_steps"):
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(cfg.get("seed", 0))
    out = []
    for e in range(epochs):
        model.train()
        order = torch.randperm(xt.shape[0], generator=g)
        total, t0 = 0.0, time.perf_counter()
        for s in range(steps):
            idx = order[s * bs : (s + 1) * bs]
            xb = xt[idx]
            if cfg.get("augment"):
                xb = augment(xb, g, cfg["fill"])
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            total += loss.item()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            hits = sum((model(xv[i : i + 500]).argmax(1) == yv[i : i + 500]).sum().item() for i in range(0, xv.shape[0], 500))
        out.append({"epoch": e + 1, "loss": total / steps, "valAccuracy": hits / xv.shape[0], "seconds": seconds})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "epochs": out}))


if __name__ == "__main__":
    main()
