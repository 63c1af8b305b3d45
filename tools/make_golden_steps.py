#!/usr/bin/env python3
"""Golden cases with several SGD steps on one batch (momentum, weight decay,
L1 and L2 penalties), in the format of ../shared/golden plus `loss_steps`.

With no arguments it writes the interpreter's multi-step fixtures to
test/fixtures/golden-extra/<case>/; with dump_golden_case.py's arguments and
--steps N it writes one case of your own, e.g.

    python3 tools/make_golden_steps.py --steps 20 --model book_models:Net \\
        --momentum 0.9 --weight-decay 1e-3 --l1 1e-4 --l2 1e-3 --out /tmp/Net20

Each step is: train forward on the same (x, labels), loss = cross-entropy +
penalties of the current weights, zero_grad, backward, optimizer.step().
io.safetensors holds logits_train, loss, loss_ce and grad.* of the FIRST step,
loss_steps [steps] (every step's loss), after.* (state_dict after the last
step) and logits_eval_after. case.json `train.steps` is the number of steps.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import dump_golden_case as dg  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden-extra')
OPTIMIZER = ['--lr', '1e-2', '--momentum', '0.9', '--weight-decay', '1e-3', '--l1', '1e-4', '--l2', '1e-3']
# Small models so the fixtures stay small: BatchNorm buffers that evolve over
# the steps, and one ResBlock shared by two calls (its BatchNorm updated twice a forward).
# Data seeds chosen (tools/pick-step-seeds.ts) so that the interpreter's replay has no
# near-tie at a max-pool or ReLU: float32 implementations that break a tie differently
# drift apart over the steps (502001 had a max-pool gap of 2.2e-7 at step 13).
# test/golden-margin.test.ts checks the margins.
FIXTURES = {
    'NetBatchNorm_steps20': ['--model', 'book_models:NetBatchNorm', '--args', '{"n_chans1": 8}',
                             '--batch', '4', '--seed', '2001', '--data-seed', '502077'],
    'NetResDeep_steps20': ['--model', 'book_models:NetResDeep', '--args', '{"n_chans1": 4, "n_blocks": 2}',
                           '--batch', '4', '--seed', '2002', '--data-seed', '502009'],
}
NOTES = (
    'Multi-step case: `steps` times on the same (x, labels): train-mode forward, loss = '
    'CrossEntropyLoss(mean) + l1_lambda*sum|p| + l2_lambda*sum p^2 over model.parameters() '
    '(current weights), zero_grad, backward, optimizer.step(). logits_train, loss, loss_ce and '
    'grad.* are from the first step; loss_steps holds every step\'s loss; after.* is the full '
    'state_dict after the last step; logits_eval_after an eval-mode forward after it.'
)


def run_steps(a, steps):
    torch.set_num_threads(a.threads)
    cls = dg.load_class(a.model)
    torch.manual_seed(a.seed)
    model = cls(**a.args)
    g = torch.Generator().manual_seed(a.data_seed)
    x = torch.randn(a.batch, *a.input_shape, generator=g)
    labels = torch.randint(0, a.classes, (a.batch,), generator=g)
    weights = dg.state(model)
    io = [('x', x), ('labels', labels)]
    model.eval()
    with torch.no_grad():
        io.append(('logits_eval', model(x)))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, dampening=0,
                          weight_decay=a.weight_decay, nesterov=False)
    losses = []
    for s in range(steps):
        model.train()
        logits = model(x)
        ce = torch.nn.CrossEntropyLoss()(logits, labels)
        extra = dg.penalty(model, a.l2, a.l1) if (a.l2 or a.l1) else None
        loss = ce if extra is None else ce + extra
        opt.zero_grad()
        loss.backward()
        if s == 0:
            io += [('logits_train', logits.detach()), ('loss', loss.detach())]
            if extra is not None:
                io.append(('loss_ce', ce.detach()))
            io += [('grad.' + n, p.grad.detach().clone()) for n, p in model.named_parameters()]
        losses.append(loss.detach())
        opt.step()
    io.append(('loss_steps', torch.stack(losses)))
    io += dg.state(model, 'after.')
    model.eval()
    with torch.no_grad():
        io.append(('logits_eval_after', model(x)))
    return model, weights, io


def write_case(argv, steps):
    a = dg.parse_args(argv)
    cls_name = a.model.split(':', 1)[-1]
    case = a.case or os.path.basename(os.path.normpath(a.out))
    model, weights, io = run_steps(a, steps)
    os.makedirs(a.out, exist_ok=True)
    dg.write_safetensors(os.path.join(a.out, 'weights.safetensors'), weights,
                         {'format': dg.FORMAT, 'model': cls_name})
    dg.write_safetensors(os.path.join(a.out, 'io.safetensors'), io,
                         {'format': dg.FORMAT, 'case': case, 'model': cls_name})
    meta = dg.case_json(a, model, cls_name)
    meta['train']['steps'] = steps
    meta['notes'] = NOTES
    dg.write_atomic(os.path.join(a.out, 'case.json'), (json.dumps(meta, indent=2) + '\n').encode('utf-8'))
    print(f'wrote {a.out}: {steps} steps, {len(weights)} weights, {len(io)} io tensors')


def main():
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # else --out is taken for --out-root
    p.add_argument('--steps', type=int)
    p.add_argument('--out-root', default=ROOT)
    p.add_argument('-h', '--help', action='store_true')
    own, rest = p.parse_known_args()
    if own.help:
        print(__doc__)
        return
    if rest:
        write_case(rest, own.steps or 1)
        return
    for name, args in FIXTURES.items():
        write_case(args + OPTIMIZER + ['--out', os.path.join(own.out_root, name)], own.steps or 20)


if __name__ == '__main__':
    main()
