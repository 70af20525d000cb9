"""Classifiers that take images in [0, 1] and normalise inside themselves.

Every model is a :class:`Classifier`: ``forward(x) = head(representation(x))``, where
``representation`` is the penultimate layer (what Ilyas et al.'s robust dataset inverts).
Build by name with :func:`build`, which records the name and arguments on the model
(``model.spec``) so that :mod:`robustutils.io` can rebuild it from a checkpoint.
"""

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Classifier(nn.Module):
    """``logits = head(body((x - mean) / std))`` for inputs ``x`` in [0, 1]."""

    def __init__(self, body: nn.Module, head: nn.Module, mean, std):
        super().__init__()
        self.body, self.head = body, head
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Return the penultimate-layer features [N, D] of inputs in [0, 1]."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits [N, classes] of inputs in [0, 1]."""
        return self.head(self.representation(x))


def _conv_block(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]


def mnist_cnn(channels=(16, 32), hidden: int = 128, kernel: int = 3, num_classes: int = 10) -> Classifier:
    """Return a :class:`Classifier` for 28x28 digits: two conv-ReLU-maxpool blocks and one hidden
    fully connected layer of ``hidden`` units (MNIST normalisation inside).

    The defaults are the small CPU model; ``channels=(32, 64), hidden=1024, kernel=5`` is
    Madry et al.'s MNIST network (see :func:`madry_mnist_cnn`).
    """
    c1, c2 = channels
    body = nn.Sequential(
        *_conv_block(1, c1, kernel),
        *_conv_block(c1, c2, kernel),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, hidden),
        nn.ReLU(),
    )
    return Classifier(body, nn.Linear(hidden, num_classes), MNIST_MEAN, MNIST_STD)


def madry_mnist_cnn(num_classes: int = 10) -> Classifier:
    """Return Madry et al. (2018)'s MNIST network: 5x5 convs of 32 and 64 channels, FC 1024."""
    return mnist_cnn((32, 64), 1024, 5, num_classes)


def mlp(hidden=(256, 256), in_shape=(1, 28, 28), num_classes: int = 10) -> Classifier:
    """Return a fully connected ReLU network on flattened images of ``in_shape`` (no convolutions;
    MNIST by default), normalised with MNIST's statistics for one channel, else CIFAR-10's."""
    layers, width = [nn.Flatten()], in_shape[0] * in_shape[1] * in_shape[2]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    mean, std = (MNIST_MEAN, MNIST_STD) if in_shape[0] == 1 else (CIFAR10_MEAN, CIFAR10_STD)
    return Classifier(nn.Sequential(*layers), nn.Linear(width, num_classes), mean, std)


def cifar_cnn(channels=(32, 64), hidden: int = 256, convs_per_block: int = 2, num_classes: int = 10) -> Classifier:
    """Return a small CIFAR-10 CNN for CPU profiles: two blocks of ``convs_per_block`` 3x3 conv-ReLU
    layers, each block ending in a 2x2 max-pool, then one hidden fully connected layer."""
    if convs_per_block < 1:
        raise ValueError(f"convs_per_block must be >= 1; got {convs_per_block}")
    c1, c2 = channels
    layers, c_in = [], 3
    for c_out in (c1, c2):
        for _ in range(convs_per_block - 1):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            c_in = c_out
        layers += _conv_block(c_in, c_out, 3)
        c_in = c_out
    body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c2 * 8 * 8, hidden), nn.ReLU())
    return Classifier(body, nn.Linear(hidden, num_classes), CIFAR10_MEAN, CIFAR10_STD)


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): BN-ReLU-conv twice, identity or 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x):
        """Return the block's output feature map (spatial size divided by ``stride``)."""
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


def preact_resnet18(num_classes: int = 10, width: int = 64) -> Classifier:
    """Return PreAct-ResNet-18 for 32x32 CIFAR images (the usual adversarial-training baseline)."""
    layers, c_in = [nn.Conv2d(3, width, 3, 1, 1, bias=False)], width
    for i, stride in enumerate((1, 2, 2, 2)):
        c_out = width * 2**i
        layers += [PreActBlock(c_in, c_out, stride), PreActBlock(c_out, c_out, 1)]
        c_in = c_out
    layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(c_in, num_classes), CIFAR10_MEAN, CIFAR10_STD)


def resnet50(num_classes: int = 9) -> Classifier:
    """Return torchvision's ResNet-50 (random init) for Restricted ImageNet, 224x224 inputs."""
    net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    body = nn.Sequential(
        net.conv1,
        net.bn1,
        net.relu,
        net.maxpool,
        net.layer1,
        net.layer2,
        net.layer3,
        net.layer4,
        net.avgpool,
        nn.Flatten(),
    )
    return Classifier(body, net.fc, IMAGENET_MEAN, IMAGENET_STD)


ARCHITECTURES = {f.__name__: f for f in (mnist_cnn, madry_mnist_cnn, mlp, cifar_cnn, preact_resnet18, resnet50)}


def build(arch: str, **kwargs) -> Classifier:
    """Return a fresh ``arch`` model built with ``kwargs``; ``model.spec`` records both."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](**kwargs)
    model.spec = {"arch": arch, "kwargs": dict(kwargs)}
    return model
