"""Losses, optimizers and LR schedules of the golden cases, built from the
settings case.json records (so a case can be recomputed from its case.json).

A schedule is a JSON object {"kind": <torch.optim.lr_scheduler class>, <its
arguments>}; SequentialLR / ChainedScheduler take "schedulers": [<schedule>, ...].
"""

import torch

LOSSES = ('cross_entropy', 'nll')
OPTIMIZERS = ('SGD', 'Adam', 'AdamW')


def make_loss(kind, label_smoothing):
    if kind == 'nll':
        if label_smoothing:
            raise SystemExit('NLLLoss has no label_smoothing')
        return torch.nn.NLLLoss()
    return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def loss_text(kind, label_smoothing):
    """The PyTorch expression of the loss, as case.json train.loss writes it."""
    if kind == 'nll':
        return "NLLLoss(reduction='mean')"
    if label_smoothing:
        return f"CrossEntropyLoss(reduction='mean', label_smoothing={label_smoothing!r})"
    return "CrossEntropyLoss(reduction='mean')"


def make_optimizer(params, a):
    """torch.optim.<a.optimizer> on the single-tensor (foreach=False) path."""
    if a.optimizer == 'SGD':
        return torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, dampening=0, weight_decay=a.weight_decay,
                               nesterov=a.nesterov, foreach=False)
    if a.momentum or a.nesterov:
        raise SystemExit(f'{a.optimizer} takes betas, not --momentum / --nesterov')
    cls = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW}[a.optimizer]
    return cls(params, lr=a.lr, betas=tuple(a.betas), eps=a.eps, weight_decay=a.weight_decay, amsgrad=False,
               foreach=False)


def make_schedule(opt, spec):
    args = {k: v for k, v in spec.items() if k != 'kind'}
    if 'schedulers' in args:
        args['schedulers'] = [make_schedule(opt, s) for s in args['schedulers']]
    cls = getattr(torch.optim.lr_scheduler, spec['kind'], None)
    if not isinstance(cls, type):
        raise SystemExit(f'no torch.optim.lr_scheduler.{spec["kind"]}')
    return cls(opt, **args)


def group_momentum(opt):
    """SGD's momentum or Adam's beta1 in the first param group (what OneCycleLR cycles)."""
    g = opt.param_groups[0]
    return g['betas'][0] if 'betas' in g else g['momentum']


def optimizer_state(model, opt):
    """optim.<param>.<key> for every per-parameter state entry; `step` as I64 (torch keeps a float tensor)."""
    out = []
    for name, p in model.named_parameters():
        for key, v in opt.state.get(p, {}).items():
            if v is None:
                continue
            t = v.detach().clone() if torch.is_tensor(v) else torch.tensor(v)
            if key == 'step':
                t = t.to(torch.int64)
            out.append((f'optim.{name}.{key}', t))
    return out


def train_settings(a):
    """case.json train fields beyond the legacy SGD ones."""
    out = {'loss_kind': a.loss, 'label_smoothing': a.label_smoothing}
    if a.optimizer != 'SGD':
        out.update(betas=list(a.betas), eps=a.eps, amsgrad=False)
    out.update(foreach=False, maximize=False, schedule=a.schedule, schedule_interval='step' if a.schedule else None)
    return out
