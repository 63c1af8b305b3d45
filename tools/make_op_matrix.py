#!/usr/bin/env python3
"""The op matrix: one tiny golden case per op x option (tinygrad's test_ops is the
model), forward and backward, made by PyTorch from tools/op_models.py.

    /usr/bin/python3 tools/make_op_matrix.py [--out-root DIR] [case ...]

writes test/fixtures/golden-ops/<case>/ (format: test/fixtures/GOLDEN.md) and
its README.md. Every case: eval forward, then one train-mode step (SGD lr 0.1)
with grad_input = d loss / d x, so parameter-free ops are checked through it;
labels range over the output width; dropout cases carry their masks. Seeds
come from the case name, so adding a case leaves the others' bytes alone.
"""

import json
import os
import sys
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_folder  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'golden-ops')
SMOOTH = ['--label-smoothing', '0.1']
NLL = ['--loss', 'nll']


def module(kind, **options):
    return ('ModuleOp', {'kind': kind, **options})


def conv(**options):
    return ('ConvOp', {'in_channels': 4, 'out_channels': 6, 'kernel_size': 3, **options})


# name: ((model, args), input C,H,W, batch, extra options)
CASES = {
    'relu': (module('ReLU'), [4, 5, 6], 3, []),
    'leaky_relu_0.1': (module('LeakyReLU', negative_slope=0.1), [4, 5, 6], 3, []),
    'elu_1': (module('ELU', alpha=1.0), [4, 5, 6], 3, []),
    'elu_0.5': (module('ELU', alpha=0.5), [4, 5, 6], 3, []),
    'gelu': (module('GELU', approximate='none'), [4, 5, 6], 3, []),
    'gelu_tanh': (module('GELU', approximate='tanh'), [4, 5, 6], 3, []),
    'silu': (module('SiLU'), [4, 5, 6], 3, []),
    'sigmoid': (module('Sigmoid'), [4, 5, 6], 3, []),
    'hardswish': (module('Hardswish'), [8, 8, 8], 4, []),  # enough values beyond +-3
    'tanh': (module('Tanh'), [4, 5, 6], 3, []),
    'relu6': (module('ReLU6', scale=4), [4, 5, 6], 3, []),  # x·4 reaches past both clamps
    'conv_stride2': (conv(stride=2, padding=1), [4, 7, 6], 3, []),
    'conv_same': (conv(padding='same'), [4, 7, 6], 3, []),
    'conv_same_k4': (conv(kernel_size=4, padding='same'), [4, 7, 6], 3, []),  # PyTorch pads 1 before, 2 after
    'conv_valid': (conv(padding='valid'), [4, 7, 6], 3, []),
    'conv_dilation2': (conv(dilation=2, padding=2), [4, 7, 6], 3, []),
    'conv_groups2': (conv(groups=2, padding=1), [4, 7, 6], 3, []),
    'conv_depthwise': (conv(out_channels=4, groups=4, padding=1), [4, 7, 6], 3, []),
    'conv_depthwise_x2': (conv(out_channels=8, groups=4, padding=1), [4, 7, 6], 3, []),
    'conv_1x1': (conv(kernel_size=1), [4, 7, 6], 3, []),
    'conv_1x1_stride2': (conv(kernel_size=1, stride=2, bias=False), [4, 7, 6], 3, []),  # ResNet's shortcut
    'conv_k1x3': (conv(kernel_size=[1, 3], padding=[0, 1]), [4, 7, 6], 3, []),
    'conv_k3x1': (conv(kernel_size=[3, 1], padding=[1, 0]), [4, 7, 6], 3, []),
    'conv_nobias': (conv(padding=1, bias=False), [4, 7, 6], 3, []),
    'conv_padding_mode_zeros': (conv(padding=1, padding_mode='zeros'), [4, 7, 6], 3, []),
    'maxpool_k3s2p1': (module('MaxPool2d', kernel_size=3, stride=2, padding=1), [4, 7, 6], 3, []),
    'avgpool_k3s2p1': (module('AvgPool2d', kernel_size=3, stride=2, padding=1, count_include_pad=True),
                       [4, 7, 6], 3, []),
    'avgpool_k3s2p1_exclude_pad': (module('AvgPool2d', kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                   [4, 7, 6], 3, []),
    'adaptive_avgpool_1': (module('AdaptiveAvgPool2d', output_size=1), [4, 6, 6], 3, []),
    'adaptive_avgpool_2': (module('AdaptiveAvgPool2d', output_size=2), [4, 6, 6], 3, []),
    'adaptive_avgpool_2x3': (module('AdaptiveAvgPool2d', output_size=[2, 3]), [4, 6, 6], 3, []),
    'adaptive_maxpool_1': (module('AdaptiveMaxPool2d', output_size=1), [4, 6, 6], 3, []),
    'mean_hw': (('MeanOp', {'keepdim': False}), [4, 5, 6], 3, []),
    'mean_hw_keepdim': (('MeanOp', {'keepdim': True}), [4, 5, 6], 3, []),
    'batchnorm2d': (('BatchNorm2dOp', {'num_features': 4}), [4, 5, 6], 4, []),
    'batchnorm2d_eps_momentum': (('BatchNorm2dOp', {'num_features': 4, 'eps': 1e-3, 'momentum': 0.3}),
                                 [4, 5, 6], 4, []),
    'batchnorm1d': (('BatchNorm1dOp', {'in_features': 120, 'num_features': 6}), [4, 5, 6], 4, []),
    'dropout_0.3': (module('Dropout', p=0.3), [4, 6, 6], 4, []),
    'dropout2d_0.5': (module('Dropout2d', p=0.5), [6, 5, 5], 4, []),
    'identity': (module('Identity'), [4, 5, 6], 3, []),
    'flatten': (('FlattenOp', {'in_features': 120, 'out_features': 5}), [4, 5, 6], 3, []),
    'cat_channels': (('CatOp', {'in_channels': 4, 'a_channels': 3, 'b_channels': 5}), [4, 5, 6], 3, []),
    'mul_gate': (('GateMulOp', {}), [4, 5, 6], 3, []),
    'add_broadcast': (('AddBroadcastOp', {}), [4, 5, 6], 3, []),
    'sub': (('SubOp', {'in_channels': 4, 'out_channels': 4}), [4, 5, 6], 3, []),
    'mul_scalar': (('ScalarMulOp', {'scale': 2.5}), [4, 5, 6], 3, []),
    'linear_nobias': (('LinearOp', {'in_features': 120, 'out_features': 5, 'bias': False}), [4, 5, 6], 3, []),
    'softmax': (('SoftmaxOp', {}), [4, 5, 6], 3, []),
    'log_softmax': (('LogSoftmaxOp', {}), [4, 5, 6], 3, []),
    'cross_entropy_label_smoothing': (('LinearOp', {'in_features': 120, 'out_features': 5}), [4, 5, 6], 4, SMOOTH),
    'nll_log_softmax': (('LinearLogSoftmaxOp', {'in_features': 120, 'out_features': 5}), [4, 5, 6], 4, NLL),
}


def case_argv(name, out_root):
    (model, args), shape, batch, extra = CASES[name]
    seed = 3000 + zlib.crc32(name.encode()) % 1000
    return ['--model', f'op_models:{model}', '--args', json.dumps(args), '--batch', str(batch),
            '--input-shape', ','.join(map(str, shape)), '--classes', 'auto', '--lr', '0.1', '--grad-input',
            '--seed', str(seed), '--data-seed', str(500000 + seed), '--out', os.path.join(out_root, name), *extra]


INTRO = '''# Op matrix golden cases (PyTorch 1.13.1)

One tiny case per op x option, made by `tools/make_op_matrix.py` from the models of
`tools/op_models.py` (TypeScript twins: `test/fixtures/op-models.ts`). Format:
`../GOLDEN.md`. Each case: eval forward, then one train-mode step on the same batch
(`torch.optim.SGD(lr=0.1)`, no momentum; skipped when the model has no parameters),
with `grad_input` = d loss / d x, so parameter-free ops are checked through it.
Labels range over the output width (`classes`). Loss: `CrossEntropyLoss` unless
the table says otherwise. Dropout cases carry `mask.op`.
'''


def main():
    golden_folder.main(__doc__, ROOT, list(CASES), case_argv, INTRO)


if __name__ == '__main__':
    main()
