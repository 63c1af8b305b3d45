"""Writes test/fixtures/cli/net_golden.pt: the golden Net weights saved by torch.save,
the book's `birds_vs_airplanes.pt` use case. Run with /usr/bin/python3 (PyTorch 1.13)."""
import collections, json, pathlib, struct
import numpy as np
import torch

root = pathlib.Path(__file__).resolve().parent.parent
src = root.parent / 'shared' / 'golden' / 'Net' / 'weights.safetensors'
raw = src.read_bytes()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
state = collections.OrderedDict()
for key, info in header.items():
    if key == '__metadata__':
        continue
    b, e = info['data_offsets']
    dtype = {'F32': np.float32, 'I64': np.int64}[info['dtype']]
    state[key] = torch.from_numpy(np.frombuffer(data[b:e], dtype=dtype).reshape(info['shape']).copy())
out = root / 'test' / 'fixtures' / 'cli' / 'net_golden.pt'
torch.save(state, out)
print(out, out.stat().st_size)
