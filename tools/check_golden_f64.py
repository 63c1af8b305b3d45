#!/usr/bin/env python3
"""Recomputes golden cases in float64 from their files alone and compares.

    /usr/bin/python3 tools/check_golden_f64.py [--gradcheck] CASE_DIR|ROOT ...

For each case: the settings from case.json, the model from its `model_module`
(book_models for the legacy cases), the weights, x, labels and dropout masks
from the case's files; then the same procedure as the generator, in float64,
with the masks replayed. Every stored tensor is compared with the README's
float32 tolerances (ratio = worst error / tolerance; <= 1 passes), which shows
that the case is well-conditioned and that case.json names every setting.
It prints the margins too: the smallest nonzero |ReLU input| and max-pool
top-2 gap over the train-mode forwards (below ~1e-6 two correct float32
implementations may route a gradient differently). --gradcheck also runs torch.autograd.gradcheck of the
loss with respect to x and every parameter (train mode, masks replayed) on
cases with at most 3000 such values.
"""

import argparse
import contextlib
import json
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.stateless import functional_call  # noqa: E402

import dump_golden_case as dg  # noqa: E402
import golden_train as gt  # noqa: E402
from dropout_masks import DropoutMasks  # noqa: E402

LOGITS = (1e-5, 1e-4, 'elementwise')
GRAD = (1e-6, 1e-4, 'tensor')
AFTER = (1e-6, 1e-5, 'elementwise')
EXACT = (0.0, 0.0, 'elementwise')


def tolerance(name, ref):
    if name in ('x', 'labels') or name.startswith(('mask.', 'mask_steps.')):
        return None  # inputs
    if ref.dtype == torch.int64 or name in ('lr_steps', 'momentum_steps'):
        return EXACT
    if name.startswith('grad'):
        return GRAD
    if name.startswith(('after.', 'optim.')):
        return AFTER
    return LOGITS


def ratio(got, ref, tol):
    atol, rtol, mode = tol
    d = (got.double() - ref.double()).abs()
    if d.numel() == 0:
        return 0.0
    bound = atol + rtol * (ref.double().abs().max() if mode == 'tensor' else ref.double().abs())
    r = d / bound if atol or rtol else torch.where(d > 0, math.inf, 0.0)
    return float(torch.as_tensor(r).max())


def case_args(meta, x, io):
    t = meta['train']
    argv = ['--model', f"{meta.get('model_module', 'book_models')}:{meta['model']}", '--args', json.dumps(meta['args']),
            '--batch', str(meta['batch']), '--lr', repr(t['lr']), '--momentum', repr(t['momentum']),
            '--weight-decay', repr(t['weight_decay']), '--l2', repr(t['l2_lambda']), '--l1', repr(t['l1_lambda']),
            '--seed', str(meta['seed']), '--data-seed', str(meta['data_seed']), '--threads', str(meta['num_threads']),
            '--input-shape', ','.join(map(str, x.shape[1:])), '--classes', str(meta.get('classes', 2)),
            '--steps', str(max(1, t['steps'])), '--optimizer', t['optimizer'], '--out', os.devnull]
    if meta['eval_only']:
        argv.append('--eval-only')
    if 'loss_kind' in t:
        argv += ['--extended', '--loss', t['loss_kind'], '--label-smoothing', repr(t['label_smoothing'])]
    if meta.get('grad_input'):
        argv.append('--grad-input')
    if t['nesterov']:
        argv.append('--nesterov')
    if 'betas' in t:
        argv += ['--betas', ','.join(map(repr, t['betas'])), '--eps', repr(t['eps'])]
    if t.get('schedule'):
        argv += ['--schedule', json.dumps(t['schedule'])]
    if meta.get('optim_state'):
        argv.append('--optim-state')
    if meta.get('activations'):
        argv += ['--activations', ','.join(meta['activations'])]
    if meta.get('grad_input_eval'):
        argv.append('--grad-input-eval')
    a = dg.parse_args(argv)
    a.record_loss_steps = 'loss_steps' in io
    return a


def replay_masks(io):
    masks = {}
    for name, t in io.items():
        if name.startswith('mask.'):
            path = name[len('mask.'):]
            steps = io.get(f'mask_steps.{path}')
            masks[path] = list(steps) if steps is not None else [t]
    return masks


def load_case(case_dir):
    meta = json.load(open(os.path.join(case_dir, 'case.json')))
    weights = dg.read_safetensors(os.path.join(case_dir, 'weights.safetensors'))
    io = dg.read_safetensors(os.path.join(case_dir, 'io.safetensors'))
    a = case_args(meta, io['x'], io)
    torch.set_num_threads(a.threads)
    model = dg.load_class(a.model)(**a.args)
    model.load_state_dict(weights)
    return a, model.double(), io


@contextlib.contextmanager
def margins(model):
    """Min |ReLU input| and min top-2 gap of the max-pool windows in the train-mode forwards (whose
    backward routes gradients by them). Exact zeros are left out: every implementation computes
    them alike (a conv without bias over ReLU zeros), and ReLU's gradient at 0 is 0 in all."""
    m = {'relu': math.inf, 'maxpool': math.inf}
    relu, max_pool, adaptive_max = torch.relu, F.max_pool2d, F.adaptive_max_pool2d
    train = {'on': False}
    handle = model.register_forward_pre_hook(lambda mod, inputs: train.update(on=mod.training))

    def gap(windows):  # windows [..., k]
        if not train['on']:
            return
        top = windows.detach().topk(2, dim=-1).values
        ok = ~((top[..., 0] == 0) & (top[..., 1] == 0))
        if ok.any():
            m['maxpool'] = min(m['maxpool'], float((top[..., 0] - top[..., 1])[ok].min()))

    def relu_hook(x, *rest, **kw):
        v = x.detach().abs()
        if train['on'] and (v > 0).any():
            m['relu'] = min(m['relu'], float(v[v > 0].min()))
        return relu(x, *rest, **kw)

    def max_pool_hook(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        k, s = torch.nn.modules.utils._pair(kernel_size), torch.nn.modules.utils._pair(stride or kernel_size)
        p = torch.nn.modules.utils._pair(padding)
        padded = F.pad(x.detach(), (p[1], p[1], p[0], p[0]), value=-math.inf)
        cols = F.unfold(padded, k, dilation=dilation, stride=s)  # [B, C*kh*kw, L]
        gap(cols.reshape(x.shape[0], x.shape[1], k[0] * k[1], -1).transpose(2, 3))
        return max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)

    def adaptive_max_hook(x, output_size, return_indices=False):
        if output_size not in (1, (1, 1), [1, 1]):
            raise SystemExit('margins: only AdaptiveMaxPool2d(1) is measured')
        gap(x.detach().flatten(2))
        return adaptive_max(x, output_size, return_indices)

    torch.relu, F.max_pool2d, F.adaptive_max_pool2d = relu_hook, max_pool_hook, adaptive_max_hook
    try:
        yield m
    finally:
        torch.relu, F.max_pool2d, F.adaptive_max_pool2d = relu, max_pool, adaptive_max
        handle.remove()


def check_case(case_dir):
    a, model, io = load_case(case_dir)
    with margins(model) as m:
        _, _, got, _ = dg.run_case(a, model, io['x'].double(), io['labels'], replay_masks(io))
    got = dict(got)
    if set(got) != set(io):
        raise SystemExit(f'{case_dir}: tensors differ: missing {set(io) - set(got)}, extra {set(got) - set(io)}')
    ratios = {n: ratio(got[n], ref, tol) for n, ref in io.items() if (tol := tolerance(n, ref))}
    return ratios, m


def gradcheck_case(case_dir, limit=3000):
    """gradcheck of the train-mode loss in x and the parameters; None when the case is too large."""
    a, model, io = load_case(case_dir)
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    x = io['x'].double().requires_grad_()
    if a.eval_only or x.numel() + sum(p.numel() for p in params) > limit:
        return None
    buffers = dict(model.named_buffers())
    loss_fn = gt.make_loss(a.loss, a.label_smoothing)
    model.train()

    def loss(x, *ps):
        with DropoutMasks(model, replay_masks(io)):
            out = functional_call(model, {**dict(zip(names, ps)), **buffers}, (x,))
        return loss_fn(out, io['labels'])

    return torch.autograd.gradcheck(loss, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-3)


def case_dirs(paths):
    for p in paths:
        if os.path.exists(os.path.join(p, 'case.json')):
            yield p
        else:
            found = (os.path.join(p, d) for d in os.listdir(p))
            yield from sorted(d for d in found if os.path.exists(os.path.join(d, 'case.json')))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('paths', nargs='+')
    p.add_argument('--gradcheck', action='store_true')
    own = p.parse_args()
    failed = 0
    for d in case_dirs(own.paths):
        ratios, m = check_case(d)
        worst = max(ratios, key=ratios.get)
        ok = ratios[worst] <= 1
        line = (f'{"ok  " if ok else "FAIL"} {os.path.basename(d):32s} worst {ratios[worst]:.2e} ({worst}); '
                f'margins relu {m["relu"]:.1e} maxpool {m["maxpool"]:.1e}')
        if own.gradcheck:
            g = gradcheck_case(d)
            line += '' if g is None else '; gradcheck ok'
        failed += not ok
        print(line, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
