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

Extended cases (--extended, implied by any option below; test/fixtures/GOLDEN.md):
--classes N|auto (auto: the model's output width), --loss nll, --label-smoothing,
--grad-input (d loss / d x), --optimizer SGD|Adam|AdamW with --nesterov / --betas /
--eps, --schedule JSON (a torch.optim.lr_scheduler, stepped after every step),
--steps N, --optim-state (optim.<param>.<key> after the last step), --activations
PATH,... (act.<path>: eval-mode outputs of those module calls), --grad-input-eval
(grad_input_eval, loss_eval: d loss / d x in eval mode, no step), --warm-bn N (N
train-mode forwards on other data before the weights are taken, so BatchNorm's
running statistics are not their initial 0 and 1). Train-mode
forwards through nn.Dropout / nn.Dropout2d with p > 0 always record the exact
masks (mask.<module path>, tools/dropout_masks.py).
"""

import argparse
import importlib
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
import warnings

import torch

from dropout_masks import DropoutMasks
import golden_train as gt

# Known and harmless: PyTorch pads an even 'same' kernel by a copy; SequentialLR steps its
# next scheduler with an epoch argument at a milestone (the closed form, as documented).
warnings.filterwarnings('ignore', message="Using padding='same' with even kernel lengths")
warnings.filterwarnings('ignore', message=re.escape('The epoch parameter in `scheduler.step()` was not necessary'))

FORMAT = 'golden-v1'
DTYPES = {
    torch.float32: 'F32',
    torch.float64: 'F64',
    torch.int64: 'I64',
    torch.int32: 'I32',
    torch.uint8: 'U8',
}
NOTES = (
    'Order: model built after torch.manual_seed(seed); x ~ randn and labels ~ randint(0,{classes}) '
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


def read_safetensors(path):
    """{name: tensor} of a file in the format above, in header order."""
    import numpy as np
    data = open(path, 'rb').read()
    n = int.from_bytes(data[:8], 'little')
    header = json.loads(data[8:8 + n])
    header.pop('__metadata__', None)
    kinds = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8}
    out = {}
    for name, h in header.items():
        begin, end = h['data_offsets']
        values = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=kinds[h['dtype']])
        out[name] = torch.from_numpy(values.copy()).reshape(h['shape'])
    return out


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


def notes(a, model):
    """What the case does beyond the plain step, then the order of operations."""
    if a.extended:
        return extended_notes(a, model)
    text = ''
    if a.weight_decay:
        text += (f'SGD weight_decay={short_float(a.weight_decay)}: PyTorch adds weight_decay*param to the '
                 'gradient of EVERY parameter (biases included) inside optimizer.step(); grad.* are the raw '
                 'gradients before that addition and loss does not include any decay term. ')
    text += penalty_notes(a)
    if a.momentum:
        text += f'SGD momentum={short_float(a.momentum)} (one step, so the buffer is the gradient itself). '
    return text + NOTES.format(classes=a.classes)


def penalty_notes(a):
    terms = []
    if a.l2:
        terms.append(f'{short_float(a.l2)} * sum(p.pow(2).sum() for p in model.parameters())')
    if a.l1:
        terms.append(f'{short_float(a.l1)} * sum(p.abs().sum() for p in model.parameters())')
    if not terms:
        return ''
    return (f'loss = CrossEntropyLoss(mean) + {" + ".join(terms)} (biases included). loss_ce holds the '
            'cross-entropy term alone; grad.* are gradients of the full loss. ')


def extended_notes(a, model):
    """The notes of an extended case: every setting that changes the numbers, then the order."""
    text = f'loss = {gt.loss_text(a.loss, a.label_smoothing)}'
    text += ' of the model output (log-probabilities). ' if a.loss == 'nll' else ' of the logits. '
    text += penalty_notes(a).replace('CrossEntropyLoss(mean)', 'that loss')
    if not list(model.parameters()):
        text += 'The model has no parameters: no optimizer is built and the steps change no state. '
    elif a.optimizer == 'SGD':
        text += (f'torch.optim.SGD(lr={a.lr!r}, momentum={a.momentum!r}, dampening=0, nesterov={a.nesterov}, '
                 f'weight_decay={a.weight_decay!r}, foreach=False); weight_decay adds wd*param to every gradient '
                 'inside step() (grad.* are the raw gradients). ')
    else:
        text += (f'torch.optim.{a.optimizer}(lr={a.lr!r}, betas={tuple(a.betas)}, eps={a.eps!r}, '
                 f'weight_decay={a.weight_decay!r}, amsgrad=False, foreach=False)')
        if a.weight_decay:
            text += (', decoupled decay: param *= 1 - lr*wd before the moments' if a.optimizer == 'AdamW'
                     else ', coupled (L2) decay: grad + wd*param enters the moments')
        text += '. '
    if a.schedule:
        text += (f'LR schedule {json.dumps(a.schedule, separators=(",", ":"))}: scheduler.step() after every '
                 'optimizer.step(); lr_steps / momentum_steps hold the lr and momentum (SGD) or beta1 (Adam) '
                 'in use at each step. ')
    text += (f'x ~ randn [{a.batch}, {", ".join(map(str, a.input_shape))}] then labels ~ randint(0,{a.classes}) from '
             'a torch.Generator seeded with data_seed, after the model is built under torch.manual_seed(seed). '
             'weights = state_dict; logits_eval = eval-mode forward. ')
    if a.warm_bn:
        text = text.replace('weights = state_dict', f'then {a.warm_bn} train-mode forwards under no_grad on 0.5 + 2*randn '
                            'batches from a generator seeded data_seed+1 (BatchNorm running statistics move); weights = state_dict')
    if a.activations:
        text += ('act.<path> = the outputs of those module calls in an eval-mode forward of x; a call is named by the '
                 'path it is called under (a module its caller holds under several names takes the k-th at its k-th call). ')
    if a.grad_input_eval:
        text += ('grad_input_eval = d loss / d x of an eval-mode forward (no penalties, no step; the parameter gradients '
                 'are dropped), loss_eval = that loss. ')
    if not a.eval_only:
        text += (f'Then {a.steps} step(s) on the same (x, labels): train-mode forward (updates BatchNorm running '
                 'stats), loss, zero_grad, backward, optimizer.step()' +
                 (', scheduler.step(). ' if a.schedule else '. ') +
                 'logits_train, loss, grad.*' + (', grad_input (d loss / d x)' if a.grad_input else '') +
                 ' are from the first step' +
                 ('; loss_steps and lr_steps hold every step\'s loss and lr' if a.steps > 1 else '') + '. ' +
                 (DROPOUT_NOTE if has_dropout(model) else '') +
                 'after.* = state_dict after the last step' +
                 ('; optim.<param>.<key> = optimizer state after it' if a.optim_state else '') +
                 '; logits_eval_after = eval-mode forward after it.')
    return text


DROPOUT_NOTE = ('Dropout modules in train mode: mask.<module path> is the exact multiplier (0 or 1/(1-p)) '
                'PyTorch applied in the first train forward (mask_steps.<path> stacks every step\'s). ')


def has_dropout(model):
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def state(model, prefix=''):
    return [(prefix + k, v.detach().clone()) for k, v in model.state_dict().items()]


def output_width(model, input_shape):
    """Classes of a model: its output width, from an eval forward on zeros (draws no random numbers)."""
    model.eval()
    with torch.no_grad():
        return model(torch.zeros(1, *input_shape)).shape[1]


def build_case(a):
    """The model (built after manual_seed(seed)), x and labels, as the notes describe."""
    torch.set_num_threads(a.threads)
    cls = load_class(a.model)
    torch.manual_seed(a.seed)
    model = cls(**a.args)
    if a.classes == 'auto':
        a.classes = output_width(model, a.input_shape)
    g = torch.Generator().manual_seed(a.data_seed)
    x = torch.randn(a.batch, *a.input_shape, generator=g)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)
    if a.warm_bn:
        warm(model, a)
    return model, x, labels


def warm(model, a):
    """a.warm_bn train-mode forwards on randn batches (mean 0.5, std 2) from their own generator: running stats move off 0 and 1."""
    g = torch.Generator().manual_seed(a.data_seed + 1)
    model.train()
    with torch.no_grad():
        for _ in range(a.warm_bn):
            model(0.5 + 2 * torch.randn(a.batch, *a.input_shape, generator=g))


def run_case(a, model=None, x=None, labels=None, replay=None):
    """weights, io and the dropout masks' record. A given model/x/labels (and masks to replay) recompute a case."""
    if model is None:
        model, x, labels = build_case(a)
    weights = state(model)
    io = [('x', x), ('labels', labels)]
    with DropoutMasks(model, replay) as masks:
        model.eval()
        with torch.no_grad():
            io.append(('logits_eval', model(x)))
        io += looking_inside(model, x, labels, a)
        if not a.eval_only:
            io += train_steps(model, x, labels, a, masks)
    return model, weights, io, masks


class CallPaths:
    """The outputs of module calls by the path each was called under, the rule of src/graph/tracer.ts:
    a module's name in the calling module (the k-th call of a module held there under several names
    takes the k-th, as nn.Sequential(*n * [block]) calls 'resblocks.0', 'resblocks.1', ...), else
    its named_modules() name."""

    def __init__(self, model, wanted):
        self.wanted, self.out, self.stack = set(wanted), {}, []
        self.names = {id(m): n for n, m in reversed(list(model.named_modules()))}
        mods = {id(m): m for m in model.modules()}.values()
        self.handles = [h for m in mods for h in (m.register_forward_pre_hook(self.enter), m.register_forward_hook(self.exit))]

    def enter(self, module, inputs):
        path = self.names[id(module)]
        if self.stack:
            parent, ppath, counts = self.stack[-1]
            names = [k for k, v in parent._modules.items() if v is module]
            if names:
                k = counts.get(id(module), 0)
                counts[id(module)] = k + 1
                path = f'{ppath}.{names[k % len(names)]}' if ppath else names[k % len(names)]
        self.stack.append((module, path, {}))

    def exit(self, module, inputs, output):
        _, path, _ = self.stack.pop()
        if path in self.wanted and self.stack:
            if path in self.out:
                raise SystemExit(f'--activations: {path!r} is called more than once')
            self.out[path] = output.detach().clone()

    def close(self):
        for h in self.handles:
            h.remove()
        missing = self.wanted - set(self.out)
        if missing:
            raise SystemExit(f'--activations: no module call {sorted(missing)}')


def looking_inside(model, x, labels, a):
    """act.<path> of an eval forward; grad_input_eval and loss_eval: d loss / d x in eval mode, no step."""
    out = []
    model.eval()
    if a.activations:
        paths = CallPaths(model, a.activations)
        with torch.no_grad():
            model(x)
        paths.close()
        out += [(f'act.{p}', paths.out[p]) for p in a.activations]
    if a.grad_input_eval:
        xin = x.detach().clone().requires_grad_()
        loss = gt.make_loss(a.loss, a.label_smoothing)(model(xin), labels)
        loss.backward()
        out += [('grad_input_eval', xin.grad.detach().clone()), ('loss_eval', loss.detach())]
        for p in model.parameters():
            p.grad = None
    return out


def train_steps(model, x, labels, a, masks):
    """a.steps steps on (x, labels): the first step's tensors, then the trajectory and the final state."""
    params = list(model.parameters())
    opt = gt.make_optimizer(params, a) if params else None  # torch refuses an empty parameter list
    sched = gt.make_schedule(opt, a.schedule) if a.schedule else None
    loss_fn = gt.make_loss(a.loss, a.label_smoothing)
    out, losses, lrs, moms = [], [], [], []
    for s in range(a.steps):
        model.train()
        xin = x.detach().clone().requires_grad_() if a.grad_input else x
        logits = model(xin)
        main = loss_fn(logits, labels)
        extra = penalty(model, a.l2, a.l1) if (a.l2 or a.l1) else None
        loss = main if extra is None else main + extra
        if opt:
            opt.zero_grad()
        loss.backward()
        if s == 0:
            out += [('logits_train', logits.detach()), ('loss', loss.detach())]
            if extra is not None:
                out.append(('loss_ce', main.detach()))
            out += [('grad.' + n, p.grad.detach().clone()) for n, p in model.named_parameters()]
            if a.grad_input:
                out.append(('grad_input', xin.grad.detach().clone()))
        losses.append(loss.detach())
        if opt:
            lrs.append(opt.param_groups[0]['lr'])
            moms.append(gt.group_momentum(opt))
            opt.step()
        if sched:
            sched.step()
    out += masks.io()
    if a.steps > 1 or a.record_loss_steps:
        out.append(('loss_steps', torch.stack(losses)))
    if a.extended and opt and (a.steps > 1 or a.schedule):
        out.append(('lr_steps', torch.tensor(lrs, dtype=torch.float64)))
        if a.schedule:
            out.append(('momentum_steps', torch.tensor(moms, dtype=torch.float64)))
    out += state(model, 'after.')
    if a.optim_state and opt:
        out += gt.optimizer_state(model, opt)
    model.eval()
    with torch.no_grad():
        out.append(('logits_eval_after', model(x)))
    return out


def case_json(a, model, cls_name, masks=None):
    params = list(model.named_parameters())
    version, build = torch_build()
    out = {
        'model': cls_name,
        'args': a.args,
        'batch': a.batch,
        'eval_only': a.eval_only,
        'train': {
            'optimizer': a.optimizer,
            'lr': a.lr,
            'momentum': a.momentum,
            'dampening': 0.0,
            'nesterov': a.nesterov,
            'weight_decay': a.weight_decay,
            'l2_lambda': a.l2,
            'l1_lambda': a.l1,
            'loss': gt.loss_text(a.loss, a.label_smoothing),
            'steps': 0 if a.eval_only else a.steps,
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
        'notes': notes(a, model),
    }
    if a.extended:
        out['train'].update(gt.train_settings(a))
        out.update(extended_fields(a, masks))
    return out


def extended_fields(a, masks):
    return {
        'model_module': a.model.split(':', 1)[0],
        'input_shape': a.input_shape,
        'classes': a.classes,
        'grad_input': a.grad_input,
        'dropout': [{'module': path, 'kind': kind, 'p': p} for path, kind, p in (masks.modules() if masks else [])],
        'optim_state': a.optim_state,
        **({'activations': a.activations} if a.activations else {}),
        **({'grad_input_eval': True} if a.grad_input_eval else {}),
        **({'warm_bn': a.warm_bn} if a.warm_bn else {}),
    }


def classes_arg(s):
    return s if s == 'auto' else int(s)


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
    p.add_argument('--classes', type=classes_arg, default=2, help='label range, or "auto": the output width')
    p.add_argument('--eval-only', action='store_true', help='only x, labels and logits_eval')
    p.add_argument('--steps', type=int, default=1, help='optimizer steps on the same batch')
    p.add_argument('--extended', action='store_true', help='write the extended case.json fields')
    p.add_argument('--loss', choices=gt.LOSSES, default='cross_entropy')
    p.add_argument('--label-smoothing', type=float, default=0.0)
    p.add_argument('--grad-input', action='store_true', help='store grad_input = d loss / d x')
    p.add_argument('--optimizer', choices=gt.OPTIMIZERS, default='SGD')
    p.add_argument('--nesterov', action='store_true')
    p.add_argument('--betas', type=lambda s: [float(v) for v in s.split(',')], default=[0.9, 0.999])
    p.add_argument('--eps', type=float, default=1e-8)
    p.add_argument('--schedule', type=json.loads, default=None, help='LR schedule as JSON, e.g. '
                   '\'{"kind": "OneCycleLR", "max_lr": 0.1, "total_steps": 10}\'')
    p.add_argument('--optim-state', action='store_true', help='store optim.<param>.<key> after the last step')
    p.add_argument('--activations', type=lambda s: s.split(','), default=[],
                   help='module paths whose eval-mode outputs to store as act.<path>, e.g. conv1,resblocks.3')
    p.add_argument('--grad-input-eval', action='store_true', help='store grad_input_eval = d loss / d x in eval mode')
    p.add_argument('--warm-bn', type=int, default=0, help='train-mode forwards before the weights are taken')
    a = p.parse_args(argv)
    if not isinstance(a.args, dict):
        p.error('--args must be a JSON object')
    if a.steps < 1:
        p.error('--steps must be at least 1')
    a.record_loss_steps = False
    a.extended = bool(a.extended or a.grad_input or a.loss != 'cross_entropy' or a.label_smoothing
                      or a.optimizer != 'SGD' or a.nesterov or a.schedule or a.optim_state
                      or a.classes == 'auto' or a.activations or a.grad_input_eval or a.warm_bn)
    return a


def write_case(a, notes_text=None):
    """Runs the case and writes its three files; returns the case.json dict."""
    cls_name = a.model.split(':', 1)[-1]
    case = a.case or os.path.basename(os.path.normpath(a.out))
    model, weights, io, masks = run_case(a)
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, 'weights.safetensors'), weights,
                      {'format': FORMAT, 'model': cls_name})
    write_safetensors(os.path.join(a.out, 'io.safetensors'), io,
                      {'format': FORMAT, 'case': case, 'model': cls_name})
    meta = case_json(a, model, cls_name, masks)
    if notes_text:
        meta['notes'] = notes_text
    write_atomic(os.path.join(a.out, 'case.json'), (json.dumps(meta, indent=2) + '\n').encode('utf-8'))
    print(f'wrote {a.out}: {a.steps} step(s), {len(weights)} weights, {len(io)} io tensors')
    return meta


def main(argv=None):
    write_case(parse_args(argv))


if __name__ == '__main__':
    main()
