"""The op matrix's models (tools/make_op_matrix.py), in PyTorch: each is one op
(plus what it needs) on an input [B, C, H, W], ending in a flat [B, n] output.

Their TypeScript twins are test/fixtures/op-models.ts: same class names,
constructor options (camelCase there) and state_dict names in the same order.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# The parameter-free modules ModuleOp builds, by family.
MODULES = (
    'ReLU', 'LeakyReLU', 'ELU', 'GELU', 'SiLU', 'Sigmoid', 'Hardswish', 'Tanh', 'ReLU6',
    'MaxPool2d', 'AvgPool2d', 'AdaptiveAvgPool2d', 'AdaptiveMaxPool2d',
    'Dropout', 'Dropout2d', 'Identity',
)


def randomise_batchnorm(bn):
    """Affine parameters and running statistics away from 1/0, so eval mode and the affine are tested."""
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)


class ModuleOp(nn.Module):
    """One parameter-free module nn.<kind>(**options), e.g. kind='ELU', alpha=0.5, then flatten(1);
    `scale` multiplies the input first (to reach an activation's far ends)."""

    def __init__(self, kind, scale=1, **options):
        super().__init__()
        if kind not in MODULES:
            raise ValueError(f'ModuleOp: unknown kind {kind!r}')
        self.scale = scale
        self.op = getattr(nn, kind)(**options)

    def forward(self, x):
        return self.op(x * self.scale if self.scale != 1 else x).flatten(1)


class ConvOp(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode='zeros'):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode)

    def forward(self, x):
        return self.conv(x).flatten(1)


class MeanOp(nn.Module):
    """x.mean([2, 3]) -> [B, C], or with keepdim [B, C, 1, 1]."""

    def __init__(self, keepdim=False):
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x):
        return x.mean([2, 3], keepdim=self.keepdim).flatten(1)


class BatchNorm2dOp(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        randomise_batchnorm(self.bn)

    def forward(self, x):
        return self.bn(x).flatten(1)


class BatchNorm1dOp(nn.Module):
    """BatchNorm1d on [B, C]: after a Linear, as in a classifier head."""

    def __init__(self, in_features, num_features):
        super().__init__()
        self.fc = nn.Linear(in_features, num_features)
        self.bn = nn.BatchNorm1d(num_features)
        randomise_batchnorm(self.bn)

    def forward(self, x):
        return self.bn(self.fc(x.flatten(1)))


class FlattenOp(nn.Module):
    """The nn.Flatten module (start_dim 1) where a classifier uses it: before a Linear."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.fc(self.flatten(x))


class LinearOp(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, x):
        return self.fc(x.flatten(1))


class LinearLogSoftmaxOp(LinearOp):
    """A head for NLLLoss: log-probabilities out."""

    def forward(self, x):
        return F.log_softmax(super().forward(x), dim=1)


class CatOp(nn.Module):
    """torch.cat along channels of the input and two 1x1 convs of different widths (DenseNet-style)."""

    def __init__(self, in_channels, a_channels, b_channels):
        super().__init__()
        self.a = nn.Conv2d(in_channels, a_channels, 1)
        self.b = nn.Conv2d(in_channels, b_channels, 1)

    def forward(self, x):
        return torch.cat([x, self.a(x), self.b(x)], 1).flatten(1)


class GateMulOp(nn.Module):
    """x * gate with a gate [B, C, 1, 1] (squeeze-excitation's shape) on the right."""

    def forward(self, x):
        gate = torch.sigmoid(x.mean([2, 3], keepdim=True))
        return (x * gate).flatten(1)


class AddBroadcastOp(nn.Module):
    """[B, C, 1, 1] + [B, C, H, W]: the broadcast operand on the left."""

    def forward(self, x):
        return (x.mean([2, 3], keepdim=True) + x).flatten(1)


class SubOp(nn.Module):
    """a(x) - b(x), same shapes; the order of the operands shows in the gradients."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.a = nn.Conv2d(in_channels, out_channels, 1)
        self.b = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return (self.a(x) - self.b(x)).flatten(1)


class ScalarMulOp(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return (x * self.scale).flatten(1)


class SoftmaxOp(nn.Module):
    def forward(self, x):
        return F.softmax(x.flatten(1), dim=1)


class LogSoftmaxOp(nn.Module):
    def forward(self, x):
        return F.log_softmax(x.flatten(1), dim=1)
