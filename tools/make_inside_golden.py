#!/usr/bin/env python3
"""Looking inside, against PyTorch: named activations (act.<path>, eval mode) and input
gradients in eval mode (grad_input_eval) and train mode without a step (grad_input),
on small book models whose BatchNorm running statistics were moved off 0 and 1.

    /usr/bin/python3 tools/make_inside_golden.py [--out-root DIR] [case ...]

writes test/fixtures/golden-inside/<case>/ (format: test/fixtures/GOLDEN.md) and its
README.md. The taps are chosen so that some keep the compiled backends' fusions whole
(conv1 before a BatchNorm + tanh + pool group; resblocks.1, a block's output after
BatchNorm + ReLU + add) and some cut them (resblocks.2.batch_norm).
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_folder  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden-inside')

# name: (model, args, batch, activations, seed)
CASES = {
    'Net_inside': ('Net', '{}', 3, 'conv1,conv2,fc1,fc2', 4001),
    'NetBatchNorm_inside': ('NetBatchNorm', '{"n_chans1": 8}', 3, 'conv1,conv2,fc1', 4002),
    'NetDropout_inside': ('NetDropout', '{"n_chans1": 8}', 3, 'conv1,conv1_dropout,conv2_dropout', 4003),
    'NetResDeep_inside': ('NetResDeep', '{"n_chans1": 4, "n_blocks": 3}', 3,
                          'conv1,resblocks.1,resblocks.2.batch_norm,resblocks.2,resblocks', 4004),
}


def case_argv(name, out_root):
    model, args, batch, acts, seed = CASES[name]
    return ['--model', f'book_models:{model}', '--args', args, '--batch', str(batch), '--lr', '1e-2',
            '--grad-input', '--grad-input-eval', '--activations', acts, '--warm-bn', '20',
            '--seed', str(seed), '--data-seed', str(500000 + seed), '--out', os.path.join(out_root, name)]


INTRO = '''# Looking inside: activations and input gradients (PyTorch 1.13.1)

Made by `tools/make_inside_golden.py` from the book's models (`tools/book_models.py`,
TypeScript: `models/book.ts`). Format: `../GOLDEN.md`. Before the weights are taken,
20 train-mode forwards move BatchNorm's running statistics off 0 and 1 (`warm_bn`), so an
eval-mode backward through BatchNorm differs from the identity. Each case: the eval forward,
`act.<path>` (the outputs of those module calls in an eval forward), `grad_input_eval` and
`loss_eval` (d loss / d x in eval mode, no step), then one train-mode SGD step (lr 1e-2)
with `grad_input`, which a train-mode input gradient without a step must equal too.
'''


def acts(meta):
    return ', '.join(meta['activations'])


def main():
    golden_folder.main(__doc__, ROOT, list(CASES), case_argv, INTRO, [('activations', acts)])


if __name__ == '__main__':
    main()
