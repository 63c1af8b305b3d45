"""A model zoo of small image CNNs people write in PyTorch, as the PyTorch
reference of models/zoo.ts (same class names, parameter names, order, shapes).
Input 3x32x32 (CIFAR-10) unless INPUT_SHAPES says otherwise; 10 classes.
Golden cases: tools/make_zoo_golden.py -> test/fixtures/golden-zoo/.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SHAPES = {'LeNet5': [1, 28, 28]}


class TutorialNet(nn.Module):
    """The CIFAR-10 net of PyTorch's "Training a Classifier" tutorial."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) on 1x28x28: tanh and 2x2 average pooling (subsampling),
    the first conv padded to keep 28x28 as the original's 32x32 input did."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.avg_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.avg_pool2d(torch.tanh(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


class VGGSmall(nn.Module):
    """VGG-style: conv3x3-BN-ReLU pairs and max pools, then a global average pool and one
    Linear. The convs have no bias (BatchNorm follows: a bias there only adds rounding noise)."""

    def __init__(self, cfg=(16, 16, 'M', 32, 32, 'M', 64, 64, 'M'), num_classes=10):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == 'M':
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """He et al. 2016's basic block; where the shape changes, an option-B shortcut
    (1x1 conv + BN), computed after the main path as torchvision does."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def excite(self, out):
        return out

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.excite(self.bn2(self.conv2(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018: x * sigmoid(fc2(relu(fc1(mean over H, W)))), the fcs as 1x1 convs on [B, C, 1, 1]."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        s = x.mean([2, 3], keepdim=True)
        s = self.sigmoid(self.fc2(self.relu(self.fc1(s))))
        return x * s


class SEBasicBlock(BasicBlock):
    """The basic block with squeeze-excitation on the residual branch, before the addition."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__(in_planes, planes, stride)
        self.se = SqueezeExcitation(planes)

    def excite(self, out):
        return self.se(out)


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016: conv3x3 16, three stages of 16/32/64 channels
    (the 2nd and 3rd start with stride 2), global average pool, fc."""

    def __init__(self, block, blocks, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(block, 16, 16, blocks[0], 1)
        self.layer2 = self._stage(block, 16, 32, blocks[1], 2)
        self.layer3 = self._stage(block, 32, 64, blocks[2], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    @staticmethod
    def _stage(block, in_planes, planes, n, stride):
        return nn.Sequential(*[block(in_planes if i == 0 else planes, planes, stride if i == 0 else 1)
                               for i in range(n)])

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNet20(CifarResNet):
    def __init__(self, num_classes=10):
        super().__init__(BasicBlock, [3, 3, 3], num_classes)


class SEResNet8(CifarResNet):
    """The CIFAR ResNet with one squeeze-excitation block per stage."""

    def __init__(self, num_classes=10):
        super().__init__(SEBasicBlock, [1, 1, 1], num_classes)


class DepthwiseSeparable(nn.Module):
    """MobileNet (v1)'s block: depthwise 3x3 (groups = channels) + BN + ReLU, pointwise 1x1 + BN + ReLU."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels,
                                   bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.bn1(self.depthwise(x)))
        return self.relu(self.bn2(self.pointwise(x)))


class MobileNetSmall(nn.Module):
    """A MobileNet-style net: a conv stem, depthwise-separable blocks, global average pool,
    dropout and a Linear classifier (torchvision's MobileNet heads end this way)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(DepthwiseSeparable(16, 32), DepthwiseSeparable(32, 64, 2),
                                    DepthwiseSeparable(64, 64), DepthwiseSeparable(64, 128, 2),
                                    DepthwiseSeparable(128, 128))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 producing `growth` channels, concatenated to its input."""

    def __init__(self, in_channels, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(self.relu(self.norm(x)))], 1)


class Transition(nn.Module):
    """DenseNet's transition: BN-ReLU-conv1x1 then 2x2 average pool."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNetSmall(nn.Module):
    """A small DenseNet (Huang et al. 2017, no bottleneck): stem conv, two dense blocks of
    `layers` layers with a transition (compression 0.5) between, BN-ReLU, global average pool, fc."""

    def __init__(self, growth=8, layers=3, num_classes=10):
        super().__init__()
        c = 16
        self.conv0 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.block1 = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(layers)])
        c += layers * growth
        self.trans1 = Transition(c, c // 2)
        c //= 2
        self.block2 = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(layers)])
        c += layers * growth
        self.norm = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.block2(self.trans1(self.block1(self.conv0(x))))
        x = self.pool(self.relu(self.norm(x)))
        return self.fc(torch.flatten(x, 1))

