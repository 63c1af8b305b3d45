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
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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


def write_case(argv, steps):
    a = dg.parse_args(argv)
    a.steps = steps
    a.record_loss_steps = True
    dg.write_case(a, None if a.extended else NOTES)


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
