"""PyTorch architectures of the zoo.  Inputs are floats in [0, 1], NCHW; each network
normalises its own input (constants from its model.json, kept out of the state_dict)."""

import torch
from torch import nn
import torch.nn.functional as F


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape), persistent=False)

    def forward(self, x):  # (n, c, h, w)
        return (x - self.mean) / self.std


def glorot_normal_(module):
    """The lottery-ticket papers' init: Glorot (Xavier) normal weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


def he_normal_(module):
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class LeNet300(nn.Module):
    """LeNet-300-100 (Frankle & Carbin 2019): 784-300-100-10, ReLU."""

    def __init__(self, mean=(0.0,), std=(1.0,)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)

    def forward(self, x):  # (n, 1, 28, 28)
        x = self.normalize(x).flatten(1)  # (n, 784)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    """LeNet-5 style CNN: conv 6@5x5 (same) -> pool -> conv 16@5x5 -> pool -> 120 -> 84 -> 10."""

    def __init__(self, mean=(0.0,), std=(1.0,)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):  # (n, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(self.normalize(x))), 2)  # (n, 6, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)  # (n, 16*5*5)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Conv4(nn.Module):
    """Conv-4 of Frankle & Carbin 2019: 64,64,pool,128,128,pool, FC 256,256,10 (3x3 same convs)."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1, self.conv2 = nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)
        self.conv3, self.conv4 = nn.Conv2d(64, 128, 3, padding=1), nn.Conv2d(128, 128, 3, padding=1)
        self.fc1, self.fc2, self.fc3 = nn.Linear(128 * 8 * 8, 256), nn.Linear(256, 256), nn.Linear(256, 10)

    def forward(self, x):  # (n, 3, 32, 32)
        x = F.relu(self.conv2(F.relu(self.conv1(self.normalize(x)))))
        x = F.max_pool2d(x, 2)  # (n, 64, 16, 16)
        x = F.max_pool2d(F.relu(self.conv4(F.relu(self.conv3(x)))), 2).flatten(1)  # (n, 128*8*8), CHW order
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pad = c_out - c_in  # option A shortcut: subsample and zero-pad channels (He et al. 2016)
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if self.pad:
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class ResNet20(nn.Module):
    """ResNet-20 for CIFAR (He et al. 2016): 3 stages of 3 basic blocks, 16/32/64 channels."""

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):  # (n, 3, 32, 32)
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.blocks(x).mean(dim=(2, 3))  # (n, 64) global average pool
        return self.fc(x)


ARCHITECTURES = {"lenet300": LeNet300, "lenet5": LeNet5, "conv4": Conv4, "resnet20": ResNet20}
INITS = {"glorot_normal": glorot_normal_, "he_normal": he_normal_}
