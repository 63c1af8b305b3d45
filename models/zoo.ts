// A zoo of small image CNNs people write in PyTorch, twins of tools/zoo_models.py:
// same class names, parameter names, order and shapes, so a state_dict moves
// between the two. Input 3x32x32 (CIFAR-10) unless `static inputShape` says
// otherwise; 10 classes. Golden cases: test/fixtures/golden-zoo/<Model>.
import { F, nn, torch } from 'tensorkiln';
import type { Tensor } from 'tensorkiln';

/** The CIFAR-10 net of PyTorch's "Training a Classifier" tutorial. */
export class TutorialNet extends nn.Module {
  conv1 = new nn.Conv2d(3, 6, 5);
  pool = new nn.MaxPool2d(2, { stride: 2 });
  conv2 = new nn.Conv2d(6, 16, 5);
  fc1 = new nn.Linear(16 * 5 * 5, 120);
  fc2 = new nn.Linear(120, 84);
  fc3 = new nn.Linear(84, 10);

  forward(x: Tensor): Tensor {
    x = this.pool(F.relu(this.conv1(x)));
    x = this.pool(F.relu(this.conv2(x)));
    x = torch.flatten(x, 1);
    x = F.relu(this.fc1(x));
    x = F.relu(this.fc2(x));
    return this.fc3(x);
  }
}

/** LeNet-5 on 1x28x28: tanh and 2x2 average pooling, the first conv padded to keep 28x28. */
export class LeNet5 extends nn.Module {
  static inputShape = [1, 28, 28];
  conv1: nn.Conv2d;
  conv2: nn.Conv2d;
  fc1: nn.Linear;
  fc2: nn.Linear;
  fc3: nn.Linear;

  constructor({ numClasses = 10 } = {}) {
    super();
    this.conv1 = new nn.Conv2d(1, 6, { kernelSize: 5, padding: 2 });
    this.conv2 = new nn.Conv2d(6, 16, 5);
    this.fc1 = new nn.Linear(16 * 5 * 5, 120);
    this.fc2 = new nn.Linear(120, 84);
    this.fc3 = new nn.Linear(84, numClasses);
  }

  forward(x: Tensor): Tensor {
    x = F.avgPool2d(torch.tanh(this.conv1(x)), 2);
    x = F.avgPool2d(torch.tanh(this.conv2(x)), 2);
    x = torch.flatten(x, 1);
    x = torch.tanh(this.fc1(x));
    x = torch.tanh(this.fc2(x));
    return this.fc3(x);
  }
}

/** VGG-style: conv3x3 (no bias) + BN + ReLU pairs and max pools, global average pool, one Linear. */
export class VGGSmall extends nn.Module {
  features: nn.Sequential;
  avgpool = new nn.AdaptiveAvgPool2d(1);
  classifier: nn.Linear;

  constructor({ cfg = [16, 16, 'M', 32, 32, 'M', 64, 64, 'M'], numClasses = 10 }: { cfg?: (number | 'M')[]; numClasses?: number } = {}) {
    super();
    const layers: nn.Module[] = [];
    let c = 3;
    for (const v of cfg) {
      if (v === 'M') layers.push(new nn.MaxPool2d(2));
      else {
        layers.push(new nn.Conv2d(c, v, { kernelSize: 3, padding: 1, bias: false }), new nn.BatchNorm2d(v), new nn.ReLU());
        c = v;
      }
    }
    this.features = new nn.Sequential(...layers);
    this.classifier = new nn.Linear(c, numClasses);
  }

  forward(x: Tensor): Tensor {
    x = this.avgpool(this.features(x));
    return this.classifier(torch.flatten(x, 1));
  }
}

/** He et al. 2016's basic block; where the shape changes an option-B shortcut (1x1 conv + BN), after the main path as torchvision. */
export class BasicBlock extends nn.Module {
  conv1: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  relu = new nn.ReLU();
  conv2: nn.Conv2d;
  bn2: nn.BatchNorm2d;
  downsample: nn.Sequential | null = null;

  constructor(inPlanes: number, planes: number, stride = 1) {
    super();
    this.conv1 = new nn.Conv2d(inPlanes, planes, { kernelSize: 3, stride, padding: 1, bias: false });
    this.bn1 = new nn.BatchNorm2d(planes);
    this.conv2 = new nn.Conv2d(planes, planes, { kernelSize: 3, padding: 1, bias: false });
    this.bn2 = new nn.BatchNorm2d(planes);
    if (stride !== 1 || inPlanes !== planes)
      this.downsample = new nn.Sequential(
        new nn.Conv2d(inPlanes, planes, { kernelSize: 1, stride, bias: false }),
        new nn.BatchNorm2d(planes),
      );
  }

  protected excite(out: Tensor): Tensor {
    return out;
  }

  forward(x: Tensor): Tensor {
    let out = this.relu(this.bn1(this.conv1(x)));
    out = this.excite(this.bn2(this.conv2(out)));
    const identity = this.downsample ? this.downsample(x) : x;
    return this.relu(out.add(identity));
  }
}

/** Hu et al. 2018: x * sigmoid(fc2(relu(fc1(mean over H, W)))), the fcs as 1x1 convs on [B, C, 1, 1]. */
export class SqueezeExcitation extends nn.Module {
  fc1: nn.Conv2d;
  relu = new nn.ReLU();
  fc2: nn.Conv2d;
  sigmoid = new nn.Sigmoid();

  constructor(channels: number, reduction = 4) {
    super();
    this.fc1 = new nn.Conv2d(channels, channels / reduction, 1);
    this.fc2 = new nn.Conv2d(channels / reduction, channels, 1);
  }

  forward(x: Tensor): Tensor {
    let s = x.mean([2, 3], true);
    s = this.sigmoid(this.fc2(this.relu(this.fc1(s))));
    return x.mul(s);
  }
}

/** The basic block with squeeze-excitation on the residual branch, before the addition. */
export class SEBasicBlock extends BasicBlock {
  se: SqueezeExcitation;

  constructor(inPlanes: number, planes: number, stride = 1) {
    super(inPlanes, planes, stride);
    this.se = new SqueezeExcitation(planes);
  }

  protected override excite(out: Tensor): Tensor {
    return this.se(out);
  }
}

type Block = new (inPlanes: number, planes: number, stride: number) => BasicBlock;

/** The CIFAR ResNet of He et al. 2016: conv3x3 16, stages of 16/32/64 channels (stride 2 into the 2nd and 3rd), GAP, fc. */
export class CifarResNet extends nn.Module {
  conv1 = new nn.Conv2d(3, 16, { kernelSize: 3, padding: 1, bias: false });
  bn1 = new nn.BatchNorm2d(16);
  relu = new nn.ReLU();
  layer1: nn.Sequential;
  layer2: nn.Sequential;
  layer3: nn.Sequential;
  avgpool = new nn.AdaptiveAvgPool2d(1);
  fc: nn.Linear;

  constructor(block: Block, blocks: number[], numClasses = 10) {
    super();
    const stage = (inPlanes: number, planes: number, n: number, stride: number) =>
      new nn.Sequential(...Array.from({ length: n }, (_, i) => new block(i === 0 ? inPlanes : planes, planes, i === 0 ? stride : 1)));
    this.layer1 = stage(16, 16, blocks[0], 1);
    this.layer2 = stage(16, 32, blocks[1], 2);
    this.layer3 = stage(32, 64, blocks[2], 2);
    this.fc = new nn.Linear(64, numClasses);
    for (const [, m] of this.namedModules())
      if (m instanceof nn.Conv2d) nn.init.kaimingNormal_(m.weight, { mode: 'fan_out', nonlinearity: 'relu' });
  }

  forward(x: Tensor): Tensor {
    x = this.relu(this.bn1(this.conv1(x)));
    x = this.layer3(this.layer2(this.layer1(x)));
    return this.fc(torch.flatten(this.avgpool(x), 1));
  }
}

/** ResNet-20: three stages of three basic blocks. */
export class ResNet20 extends CifarResNet {
  constructor({ numClasses = 10 } = {}) {
    super(BasicBlock, [3, 3, 3], numClasses);
  }
}

/** The CIFAR ResNet with one squeeze-excitation block per stage. */
export class SEResNet8 extends CifarResNet {
  constructor({ numClasses = 10 } = {}) {
    super(SEBasicBlock, [1, 1, 1], numClasses);
  }
}

/** MobileNet (v1)'s block: depthwise 3x3 (groups = channels) + BN + ReLU, pointwise 1x1 + BN + ReLU. */
export class DepthwiseSeparable extends nn.Module {
  depthwise: nn.Conv2d;
  bn1: nn.BatchNorm2d;
  pointwise: nn.Conv2d;
  bn2: nn.BatchNorm2d;
  relu = new nn.ReLU();

  constructor(inChannels: number, outChannels: number, stride = 1) {
    super();
    this.depthwise = new nn.Conv2d(inChannels, inChannels, { kernelSize: 3, stride, padding: 1, groups: inChannels, bias: false });
    this.bn1 = new nn.BatchNorm2d(inChannels);
    this.pointwise = new nn.Conv2d(inChannels, outChannels, { kernelSize: 1, bias: false });
    this.bn2 = new nn.BatchNorm2d(outChannels);
  }

  forward(x: Tensor): Tensor {
    x = this.relu(this.bn1(this.depthwise(x)));
    return this.relu(this.bn2(this.pointwise(x)));
  }
}

/** A MobileNet-style net: conv stem, depthwise-separable blocks, global average pool, dropout, Linear. */
export class MobileNetSmall extends nn.Module {
  stem = new nn.Sequential(new nn.Conv2d(3, 16, { kernelSize: 3, padding: 1, bias: false }), new nn.BatchNorm2d(16), new nn.ReLU());
  blocks = new nn.Sequential(
    new DepthwiseSeparable(16, 32),
    new DepthwiseSeparable(32, 64, 2),
    new DepthwiseSeparable(64, 64),
    new DepthwiseSeparable(64, 128, 2),
    new DepthwiseSeparable(128, 128),
  );
  pool = new nn.AdaptiveAvgPool2d(1);
  dropout = new nn.Dropout(0.2);
  fc: nn.Linear;

  constructor({ numClasses = 10 } = {}) {
    super();
    this.fc = new nn.Linear(128, numClasses);
  }

  forward(x: Tensor): Tensor {
    x = this.pool(this.blocks(this.stem(x)));
    return this.fc(this.dropout(torch.flatten(x, 1)));
  }
}

/** BN-ReLU-conv3x3 producing `growth` channels, concatenated to its input. */
export class DenseLayer extends nn.Module {
  norm: nn.BatchNorm2d;
  relu = new nn.ReLU();
  conv: nn.Conv2d;

  constructor(inChannels: number, growth: number) {
    super();
    this.norm = new nn.BatchNorm2d(inChannels);
    this.conv = new nn.Conv2d(inChannels, growth, { kernelSize: 3, padding: 1, bias: false });
  }

  forward(x: Tensor): Tensor {
    return torch.cat([x, this.conv(this.relu(this.norm(x)))], 1);
  }
}

/** DenseNet's transition: BN-ReLU-conv1x1 then 2x2 average pool. */
export class Transition extends nn.Module {
  norm: nn.BatchNorm2d;
  relu = new nn.ReLU();
  conv: nn.Conv2d;
  pool = new nn.AvgPool2d(2);

  constructor(inChannels: number, outChannels: number) {
    super();
    this.norm = new nn.BatchNorm2d(inChannels);
    this.conv = new nn.Conv2d(inChannels, outChannels, { kernelSize: 1, bias: false });
  }

  forward(x: Tensor): Tensor {
    return this.pool(this.conv(this.relu(this.norm(x))));
  }
}

/** A small DenseNet (no bottleneck): stem conv, two dense blocks with a transition (compression 0.5) between, BN-ReLU, GAP, fc. */
export class DenseNetSmall extends nn.Module {
  conv0: nn.Conv2d;
  block1: nn.Sequential;
  trans1: Transition;
  block2: nn.Sequential;
  norm: nn.BatchNorm2d;
  relu = new nn.ReLU();
  pool = new nn.AdaptiveAvgPool2d(1);
  fc: nn.Linear;

  constructor({ growth = 8, layers = 3, numClasses = 10 } = {}) {
    super();
    const block = (c: number) => new nn.Sequential(...Array.from({ length: layers }, (_, i) => new DenseLayer(c + i * growth, growth)));
    let c = 16;
    this.conv0 = new nn.Conv2d(3, c, { kernelSize: 3, padding: 1, bias: false });
    this.block1 = block(c);
    c += layers * growth;
    this.trans1 = new Transition(c, Math.floor(c / 2));
    c = Math.floor(c / 2);
    this.block2 = block(c);
    c += layers * growth;
    this.norm = new nn.BatchNorm2d(c);
    this.fc = new nn.Linear(c, numClasses);
  }

  forward(x: Tensor): Tensor {
    x = this.block2(this.trans1(this.block1(this.conv0(x))));
    x = this.pool(this.relu(this.norm(x)));
    return this.fc(torch.flatten(x, 1));
  }
}

export const zooModels = { TutorialNet, LeNet5, VGGSmall, ResNet20, MobileNetSmall, SEResNet8, DenseNetSmall } as const;
