#!/usr/bin/env python3
"""Write a golden reference case for a PyTorch model, in the format of
../shared/golden (see its README.md): weights.safetensors, io.safetensors and
case.json in one folder.

Use it to check a port of your own PyTorch model against PyTorch:

    python3 tools/dump_golden_case.py --model book_models:NetWidth \\
        --args '{"n_chans1": 32}' --batch 8 --lr 1e-2 --seed 1001 \\
        --data-seed 501001 --out /tmp/NetWidth

--model is "module:Class"; the module is imported from the current folder,
this tools/ folder or anywhere on PYTHONPATH. The model must take an input
[B, *input-shape] and return logits [B, classes].
"""

import argparse
import importlib
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
import torch

FORMAT = 'golden-v1'
DTYPES = {
    torch.float32: 'F32',
    torch.float64: 'F64',
    torch.int64: 'I64',
    torch.int32: 'I32',
    torch.uint8: 'U8',
}
NOTES = (
    'Order: model built after torch.manual_seed(seed); x ~ randn and labels ~ randint(0,2) '
    'from a torch.Generator seeded with data_seed; weights = state_dict; logits_eval = '
    'eval-mode forward; then train-mode forward (logits_train; updates BatchNorm running '
    'stats), loss, backward (grad.*), optimizer.step() -> after.* (full state_dict, running '
    'stats included), logits_eval_after = eval-mode forward after the step.'
)


def safetensors_bytes(tensors, metadata):
    """Serialize [(name, tensor)] like the golden files: header in the given
    order with __metadata__ first, data of 8-byte types first, then 4-, then
    1-byte ones (stable), no gaps, header padded with spaces to 8 bytes."""
    if sys.byteorder != 'little':
        raise SystemExit('safetensors data are little-endian; this machine is not')
    items = []
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        if t.dtype not in DTYPES:
            raise SystemExit(f'tensor {name!r} has dtype {t.dtype}, not one of {list(DTYPES)}')
        items.append((name, t))
    order = sorted(range(len(items)), key=lambda i: -items[i][1].element_size())
    offsets, chunks, pos = {}, [], 0
    for i in order:
        name, t = items[i]
        data = t.numpy().tobytes()
        offsets[name] = [pos, pos + len(data)]
        chunks.append(data)
        pos += len(data)
    header = {'__metadata__': metadata} if metadata else {}
    for name, t in items:
        header[name] = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': offsets[name]}
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, 'little') + text + b''.join(chunks)


def write_atomic(path, data):
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_safetensors(path, tensors, metadata=None):
    write_atomic(path, safetensors_bytes(list(tensors), metadata or {}))


def load_class(spec):
    if ':' not in spec:
        raise SystemExit(f'--model must be "module:Class", got {spec!r}')
    module_name, class_name = spec.split(':', 1)
    sys.path[:0] = [os.getcwd(), os.path.dirname(os.path.abspath(__file__))]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def torch_build():
    """(version, build) of the installed torch; Debian's build reports 1.13.0a0 for 1.13.1."""
    try:
        deb = subprocess.run(['dpkg-query', '-W', '-f=${Version}', 'python3-torch'],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        deb = ''
    kind = 'CUDA' if torch.cuda.is_available() else 'CPU'
    if deb and torch.__file__.startswith('/usr/lib/python3/'):
        return deb.split('+')[0], f'Debian python3-torch {deb} ({kind})'
    return torch.__version__.split('+')[0], f'torch {torch.__version__} ({kind})'


def shared_modules(model):
    """Groups of module names that are one instance, outermost only."""
    names = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), []).append(name)
    groups = [g for g in names.values() if len(g) > 1]
    shared = {n for g in groups for n in g}

    def inside_shared(name):
        parts = name.split('.')
        return any('.'.join(parts[:i]) in shared for i in range(1, len(parts)))

    return [g for g in groups if not all(inside_shared(n) for n in g)]


def penalty(model, l2, l1):
    """The loss penalty, written as the notes in case.json describe it."""
    total = 0
    if l2:
        total = total + l2 * sum(p.pow(2).sum() for p in model.parameters())
    if l1:
        total = total + l1 * sum(p.abs().sum() for p in model.parameters())
    return total


def short_float(v):
    """1e-3 rather than 0.001, as the golden notes write it."""
    mantissa, exponent = f'{v:e}'.split('e')
    mantissa = mantissa.rstrip('0').rstrip('.')
    return f'{mantissa}e{int(exponent)}'


def notes(a):
    """What the case does beyond the plain step, then the order of operations."""
    text = ''
    if a.weight_decay:
        text += (f'SGD weight_decay={short_float(a.weight_decay)}: PyTorch adds weight_decay*param to the '
                 'gradient of EVERY parameter (biases included) inside optimizer.step(); grad.* are the raw '
                 'gradients before that addition and loss does not include any decay term. ')
    terms = []
    if a.l2:
        terms.append(f'{short_float(a.l2)} * sum(p.pow(2).sum() for p in model.parameters())')
    if a.l1:
        terms.append(f'{short_float(a.l1)} * sum(p.abs().sum() for p in model.parameters())')
    if terms:
        text += (f'loss = CrossEntropyLoss(mean) + {" + ".join(terms)} (biases included). loss_ce holds the '
                 'cross-entropy term alone; grad.* are gradients of the full loss. ')
    if a.momentum:
        text += f'SGD momentum={short_float(a.momentum)} (one step, so the buffer is the gradient itself). '
    return text + NOTES


def state(model, prefix=''):
    return [(prefix + k, v.detach().clone()) for k, v in model.state_dict().items()]


def run_case(a):
    torch.set_num_threads(a.threads)
    cls = load_class(a.model)
    torch.manual_seed(a.seed)
    model = cls(**a.args)
    g = torch.Generator().manual_seed(a.data_seed)
    x = torch.randn(a.batch, *a.input_shape, generator=g)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)

    weights = state(model)
    io = [('x', x), ('labels', labels)]
    model.eval()
    with torch.no_grad():
        io.append(('logits_eval', model(x)))
    if not a.eval_only:
        io += train_step(model, x, labels, a)
    return model, weights, io


def train_step(model, x, labels, a):
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, dampening=0,
                          weight_decay=a.weight_decay, nesterov=False)
    model.train()
    logits = model(x)
    ce = torch.nn.CrossEntropyLoss()(logits, labels)
    extra = penalty(model, a.l2, a.l1) if (a.l2 or a.l1) else None
    loss = ce if extra is None else ce + extra
    opt.zero_grad()
    loss.backward()
    out = [('logits_train', logits.detach()), ('loss', loss.detach())]
    if extra is not None:
        out.append(('loss_ce', ce.detach()))
    out += [('grad.' + n, p.grad.detach().clone()) for n, p in model.named_parameters()]
    opt.step()
    out += state(model, 'after.')
    model.eval()
    with torch.no_grad():
        out.append(('logits_eval_after', model(x)))
    return out


def case_json(a, model, cls_name):
    params = list(model.named_parameters())
    version, build = torch_build()
    return {
        'model': cls_name,
        'args': a.args,
        'batch': a.batch,
        'eval_only': a.eval_only,
        'train': {
            'optimizer': 'SGD',
            'lr': a.lr,
            'momentum': a.momentum,
            'dampening': 0.0,
            'nesterov': False,
            'weight_decay': a.weight_decay,
            'l2_lambda': a.l2,
            'l1_lambda': a.l1,
            'loss': "CrossEntropyLoss(reduction='mean')",
            'steps': 0 if a.eval_only else 1,
        },
        'seed': a.seed,
        'data_seed': a.data_seed,
        'torch_version': version,
        'torch_version_string': torch.__version__,
        'torch_build': build,
        'dtype': 'float32',
        'num_threads': a.threads,
        'param_names': [n for n, _ in params],
        'param_numel': [p.numel() for _, p in params],
        'param_total': sum(p.numel() for _, p in params),
        'shared_modules': shared_modules(model),
        'notes': notes(a),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', required=True, help='"module:Class", e.g. book_models:Net')
    p.add_argument('--args', type=json.loads, default={}, help='constructor arguments as JSON')
    p.add_argument('--out', required=True, help='case folder to write (created if missing)')
    p.add_argument('--case', help='case name for the metadata (default: the folder name)')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--momentum', type=float, default=0.0)
    p.add_argument('--weight-decay', type=float, default=0.0)
    p.add_argument('--l2', type=float, default=0.0, help='L2 penalty lambda added to the loss')
    p.add_argument('--l1', type=float, default=0.0, help='L1 penalty lambda added to the loss')
    p.add_argument('--seed', type=int, default=1001)
    p.add_argument('--data-seed', type=int, default=501001)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--input-shape', type=lambda s: [int(v) for v in s.split(',')], default=[3, 32, 32],
                   help='C,H,W of one input (default 3,32,32)')
    p.add_argument('--classes', type=int, default=2)
    p.add_argument('--eval-only', action='store_true', help='only x, labels and logits_eval')
    a = p.parse_args(argv)
    if not isinstance(a.args, dict):
        p.error('--args must be a JSON object')
    return a


def main(argv=None):
    a = parse_args(argv)
    cls_name = a.model.split(':', 1)[-1]
    case = a.case or os.path.basename(os.path.normpath(a.out))
    model, weights, io = run_case(a)
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, 'weights.safetensors'), weights,
                      {'format': FORMAT, 'model': cls_name})
    write_safetensors(os.path.join(a.out, 'io.safetensors'), io,
                      {'format': FORMAT, 'case': case, 'model': cls_name})
    text = json.dumps(case_json(a, model, cls_name), indent=2) + '\n'
    write_atomic(os.path.join(a.out, 'case.json'), text.encode('utf-8'))
    print(f'wrote {a.out}: {len(weights)} weights, {len(io)} io tensors')


if __name__ == '__main__':
    main()
