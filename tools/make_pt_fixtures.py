#!/usr/bin/env python3
"""Make the small PyTorch .pt fixtures of test/io-torch.test.ts, in
test/fixtures/io/. Run it from anywhere with PyTorch installed:

    /usr/bin/python3 tools/make_pt_fixtures.py

Each state_dict is saved in the zip format (torch.save's default) and the
legacy one (_use_new_zipfile_serialization=False), and its contiguous values
as <name>.safetensors, the reference the test compares against. The malicious
files are made by pickling an object whose __reduce__ names os.system or eval:
pickling only records the name, nothing is run.
"""

import os
import pickle
import sys
import zipfile

sys.dont_write_bytecode = True
import torch
import torch.nn as nn

from dump_golden_case import write_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'io')


class Tiny(nn.Module):
    """conv + batchnorm + linear: F32 weights and an I64 num_batches_tracked."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.conv1_batchnorm = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(16, 2)


def tiny_state():
    torch.manual_seed(7)
    model = Tiny()
    model.train()
    model.conv1_batchnorm(torch.randn(2, 4, 3, 3))  # move the running stats off 0/1
    return model.state_dict()


def views_state():
    """Tensors that share one storage, with offsets and strides, plus other dtypes."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    return {
        'base': base,
        'transposed': base.t(),             # strides (1, 4)
        'row': base[1],                     # storage offset 4
        'column': base[:, 2],               # offset 2, stride 4
        'every_other': base[::2, 1::2],     # offset 1, strides (8, 2)
        'scalar': torch.tensor(2.5, dtype=torch.float64),
        'f64': torch.linspace(-1, 1, 5, dtype=torch.float64),
        'i64': torch.tensor([[-3, 0], [2 ** 40, 7]], dtype=torch.int64),
        'i32': torch.tensor([1, -2, 3], dtype=torch.int32),
        'u8': torch.tensor([0, 200, 255], dtype=torch.uint8),
        'half': torch.tensor([0.5, -1.25, 3.0, 6e-5], dtype=torch.float16),  # 6e-5 is subnormal
        'bf16': torch.tensor([1.5, -2.0, 3.140625], dtype=torch.bfloat16),
        'empty': torch.zeros(0, 3),
        'param': nn.Parameter(torch.tensor([1.0, 2.0])),  # _rebuild_parameter
    }


def reference(state):
    """What the reader must return: contiguous copies, F16 and BF16 widened to F32."""
    out = []
    for k, v in state.items():
        v = v.detach().contiguous()
        out.append((k, v.float() if v.dtype in (torch.float16, torch.bfloat16) else v))
    return out


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def big_endian_copy(src_path, dst_path, state):
    """The archive as a big-endian machine writes it: byteorder 'big', storages byte-swapped.
    Each tensor of `state` has its own storage, keyed '0', '1', ... in state order."""
    sizes = {str(i): v.element_size() for i, v in enumerate(state.values())}
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(dst_path, 'w') as dst:
        prefix = src.namelist()[0].split('/')[0]
        for info in src.infolist():
            data = src.read(info.filename)
            key = info.filename.split('/data/')[1] if '/data/' in info.filename else None
            if key is not None:
                n = sizes[key]
                data = b''.join(data[i:i + n][::-1] for i in range(0, len(data), n))
            dst.writestr(info.filename, data)
        dst.writestr(f'{prefix}/byteorder', 'big')


def save_both(name, obj):
    torch.save(obj, os.path.join(OUT, f'{name}_zip.pt'))
    torch.save(obj, os.path.join(OUT, f'{name}_legacy.pt'), _use_new_zipfile_serialization=False)


def deflated_copy(src_path, dst_path):
    """The same archive with deflated entries, as a zip tool would rewrite it."""
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(dst_path, 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))


def bounds_fixtures():
    """Files that must not amplify memory: one storage under 300 names, a deflated 4 MB of zeros."""
    base = torch.arange(16384, dtype=torch.float32)
    shared = {f'v{i}': base.view(16384) for i in range(300)}
    shared['transposed'] = base.view(128, 128).t()
    torch.save(shared, os.path.join(OUT, 'shared_storage_zip.pt'))
    plain = os.path.join(OUT, 'zeros_stored.tmp')
    torch.save({'z': torch.zeros(1 << 20)}, plain)
    deflated_copy(plain, os.path.join(OUT, 'zeros_deflated.pt'))
    os.remove(plain)


def main():
    os.makedirs(OUT, exist_ok=True)
    bounds_fixtures()
    for name, state in [('tiny', tiny_state()), ('views', views_state())]:
        save_both(name, state)
        write_safetensors(os.path.join(OUT, f'{name}.safetensors'), reference(state), {'fixture': name})

    weights = {'w': torch.ones(2)}
    save_both('evil_system', {**weights, 'payload': Evil(os.system, 'echo pwned')})
    save_both('evil_eval', {**weights, 'payload': Evil(eval, '1 + 1')})
    with open(os.path.join(OUT, 'evil_system.pkl'), 'wb') as f:
        pickle.dump(Evil(os.system, 'echo pwned'), f, protocol=2)
    # A whole module rather than its state_dict: the classes are globals too.
    torch.save(Tiny(), os.path.join(OUT, 'whole_model_zip.pt'))
    deflated_copy(os.path.join(OUT, 'tiny_zip.pt'), os.path.join(OUT, 'tiny_deflated.pt'))
    big_endian_copy(os.path.join(OUT, 'tiny_zip.pt'), os.path.join(OUT, 'tiny_big_endian.pt'), tiny_state())
    # stride 0: one stored element seen as many
    torch.save({'expanded': torch.ones(1).expand(1000)}, os.path.join(OUT, 'expanded_zip.pt'))
    # A training checkpoint: nested state_dict next to a plain number.
    torch.save({'model': tiny_state(), 'epoch': 3}, os.path.join(OUT, 'checkpoint_zip.pt'))
    for f in sorted(os.listdir(OUT)):
        print(f'{os.path.getsize(os.path.join(OUT, f)):6d}  {f}')


if __name__ == '__main__':
    main()
