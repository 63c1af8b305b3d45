// The models of chapter 8 of "Deep Learning with PyTorch" (Stevens, Antiga,
// Viehmann), written the way the book writes them. Input [3, 32, 32] (CIFAR-2),
// output two logits (airplane, bird). Field names are the state_dict keys.
import { F, nn, torch } from 'tensorkiln';
import type { Tensor } from 'tensorkiln';

export class Net extends nn.Module {
  static inputShape = [3, 32, 32];
  conv1 = new nn.Conv2d(3, 16, { kernelSize: 3, padding: 1 });
  conv2 = new nn.Conv2d(16, 8, { kernelSize: 3, padding: 1 });
  fc1 = new nn.Linear(8 * 8 * 8, 32);
  fc2 = new nn.Linear(32, 2);

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.tanh(this.conv1(x)), 2);
    out = F.maxPool2d(torch.tanh(this.conv2(out)), 2);
    out = out.view(-1, 8 * 8 * 8);
    out = torch.tanh(this.fc1(out));
    return this.fc2(out);
  }
}

export class NetWidth extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  conv2: nn.Conv2d;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    this.conv2 = new nn.Conv2d(nChans1, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.fc1 = new nn.Linear((8 * 8 * nChans1) / 2, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.tanh(this.conv1(x)), 2);
    out = F.maxPool2d(torch.tanh(this.conv2(out)), 2);
    out = out.view(-1, (8 * 8 * this.nChans1) / 2);
    out = torch.tanh(this.fc1(out));
    return this.fc2(out);
  }
}

export class NetDropout extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  conv1_dropout: nn.Dropout2d;
  conv2: nn.Conv2d;
  conv2_dropout: nn.Dropout2d;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    this.conv1_dropout = new nn.Dropout2d(0.4);
    this.conv2 = new nn.Conv2d(nChans1, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.conv2_dropout = new nn.Dropout2d(0.4);
    this.fc1 = new nn.Linear((8 * 8 * nChans1) / 2, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.tanh(this.conv1(x)), 2);
    out = this.conv1_dropout(out);
    out = F.maxPool2d(torch.tanh(this.conv2(out)), 2);
    out = this.conv2_dropout(out);
    out = out.view(-1, (8 * 8 * this.nChans1) / 2);
    out = torch.tanh(this.fc1(out));
    return this.fc2(out);
  }
}

export class NetBatchNorm extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  conv1_batchnorm: nn.BatchNorm2d;
  conv2: nn.Conv2d;
  conv2_batchnorm: nn.BatchNorm2d;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    this.conv1_batchnorm = new nn.BatchNorm2d(nChans1);
    this.conv2 = new nn.Conv2d(nChans1, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.conv2_batchnorm = new nn.BatchNorm2d(nChans1 / 2);
    this.fc1 = new nn.Linear((8 * 8 * nChans1) / 2, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = this.conv1_batchnorm(this.conv1(x));
    out = F.maxPool2d(torch.tanh(out), 2);
    out = this.conv2_batchnorm(this.conv2(out));
    out = F.maxPool2d(torch.tanh(out), 2);
    out = out.view(-1, (8 * 8 * this.nChans1) / 2);
    out = torch.tanh(this.fc1(out));
    return this.fc2(out);
  }
}

export class NetDepth extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  conv2: nn.Conv2d;
  conv3: nn.Conv2d;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    this.conv2 = new nn.Conv2d(nChans1, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.conv3 = new nn.Conv2d(nChans1 / 2, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.fc1 = new nn.Linear((4 * 4 * nChans1) / 2, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.relu(this.conv1(x)), 2);
    out = F.maxPool2d(torch.relu(this.conv2(out)), 2);
    out = F.maxPool2d(torch.relu(this.conv3(out)), 2);
    out = out.view(-1, (4 * 4 * this.nChans1) / 2);
    out = torch.relu(this.fc1(out));
    return this.fc2(out);
  }
}

export class NetRes extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  conv2: nn.Conv2d;
  conv3: nn.Conv2d;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    this.conv2 = new nn.Conv2d(nChans1, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.conv3 = new nn.Conv2d(nChans1 / 2, nChans1 / 2, { kernelSize: 3, padding: 1 });
    this.fc1 = new nn.Linear((4 * 4 * nChans1) / 2, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.relu(this.conv1(x)), 2);
    out = F.maxPool2d(torch.relu(this.conv2(out)), 2);
    const out1 = out;
    out = F.maxPool2d(torch.relu(this.conv3(out)).add(out1), 2);
    out = out.view(-1, (4 * 4 * this.nChans1) / 2);
    out = torch.relu(this.fc1(out));
    return this.fc2(out);
  }
}

export class ResBlock extends nn.Module {
  conv: nn.Conv2d;
  batch_norm: nn.BatchNorm2d;

  constructor(nChans: number) {
    super();
    this.conv = new nn.Conv2d(nChans, nChans, { kernelSize: 3, padding: 1, bias: false });
    this.batch_norm = new nn.BatchNorm2d(nChans);
    nn.init.kaimingNormal_(this.conv.weight, { nonlinearity: 'relu' });
    nn.init.constant_(this.batch_norm.weight, 0.5);
    nn.init.zeros_(this.batch_norm.bias);
  }

  forward(x: Tensor): Tensor {
    let out = this.conv(x);
    out = this.batch_norm(out);
    out = torch.relu(out);
    return out.add(x);
  }
}

export class NetResDeep extends nn.Module {
  nChans1: number;
  conv1: nn.Conv2d;
  resblocks: nn.Sequential;
  fc1: nn.Linear;
  fc2: nn.Linear;

  constructor({ nChans1 = 32, nBlocks = 10 } = {}) {
    super();
    this.nChans1 = nChans1;
    this.conv1 = new nn.Conv2d(3, nChans1, { kernelSize: 3, padding: 1 });
    // As the book: `n_blocks * [ResBlock(n_chans1)]` repeats ONE block, so its weights are shared.
    this.resblocks = new nn.Sequential(...Array<nn.Module>(nBlocks).fill(new ResBlock(nChans1)));
    this.fc1 = new nn.Linear(8 * 8 * nChans1, 32);
    this.fc2 = new nn.Linear(32, 2);
  }

  forward(x: Tensor): Tensor {
    let out = F.maxPool2d(torch.relu(this.conv1(x)), 2);
    out = this.resblocks(out);
    out = F.maxPool2d(out, 2);
    out = out.view(-1, 8 * 8 * this.nChans1);
    out = torch.relu(this.fc1(out));
    return this.fc2(out);
  }
}

export const bookModels = { Net, NetWidth, NetDropout, NetBatchNorm, NetDepth, NetRes, NetResDeep } as const;
