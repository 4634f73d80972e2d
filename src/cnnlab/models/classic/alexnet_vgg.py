"""AlexNet (Krizhevsky et al., 2012) and VGG-11/16 (Simonyan & Zisserman, 2014), torchvision's.

Both are a ``features`` stack of convs, ReLUs and max pools, an adaptive average pool to a
fixed map (6x6 for AlexNet, 7x7 for VGG: at 224x224 it changes nothing, on other sizes the
classifier still fits), and a ``classifier`` of three dense layers with dropout. Keys as
torchvision's (``features.0.weight``, ``classifier.1.weight`` / ``classifier.0.weight``).

torchvision's AlexNet is the one-GPU variant of the paper ("One weird trick",
arXiv:1404.5997): 64-192-384-256-256 channels and no local response normalization.
"""

from __future__ import annotations

from cnnlab.errors import check_int
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic.common import Size, check_counts, check_size, dropout_p, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision

#: Channels of each conv, "M" for a 2x2 max pool: VGG's configurations A (11) and D (16).
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _net(features: Sequential, pool: int, classifier: Sequential) -> Graph:
    net = Graph("x")
    net.add("features", features, "x")
    net.add("avgpool", AdaptiveAvgPool2D(pool), "features")
    net.add("flatten", Flatten(), "avgpool")  # (N, 256 * 6 * 6) / (N, 512 * 7 * 7)
    net.output(net.add("classifier", classifier, "flatten"))
    return net


def alexnet(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    dropout: float = 0.5,
    hidden: int = 4096,
) -> Graph:
    """AlexNet: 61.1M parameters at 1000 classes (58.6M of them in the classifier); torchvision's keys.

    Args:
        dropout: probability of the two Dropouts of the classifier (torchvision's 0.5).
        hidden: width of the two hidden dense layers (torchvision: 4096; smaller for small data).

    The smallest input is 63x63 (11x11 stride-4 conv, then three 3x3 stride-2 pools).

    Example:
        >>> net = alexnet(input_size=64, num_classes=10, rng=0, hidden=32)
        >>> net.output_shape((2, 3, 64, 64)), list(net.state_dict())[-2:]
        ((2, 10), ['classifier.6.weight', 'classifier.6.bias'])
    """
    check_counts("alexnet", in_channels, num_classes)
    p = dropout_p("alexnet", dropout)
    check_int("alexnet", "hidden", hidden)
    size = pair("alexnet", input_size)
    rng = make_rng(rng)
    features = Sequential(
        Conv2D(in_channels, 64, 11, stride=4, padding=2, rng=rng),
        ReLU(),
        MaxPool2D(3, stride=2),
        Conv2D(64, 192, 5, padding=2, rng=rng),
        ReLU(),
        MaxPool2D(3, stride=2),
        Conv2D(192, 384, 3, padding=1, rng=rng),
        ReLU(),
        Conv2D(384, 256, 3, padding=1, rng=rng),
        ReLU(),
        Conv2D(256, 256, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(3, stride=2),
    )
    classifier = Sequential(
        Dropout(p, rng=rng),
        Dense(256 * 6 * 6, hidden, rng=rng),
        ReLU(),
        Dropout(p, rng=rng),
        Dense(hidden, hidden, rng=rng),
        ReLU(),
        Dense(hidden, num_classes, rng=rng),
    )
    net = _net(features, 6, classifier)
    check_size("alexnet", net, in_channels, size, 63)
    return net


def _vgg(
    model: str,
    in_channels: int,
    input_size: Size,
    num_classes: int,
    rng: RngLike,
    batch_norm: bool,
    dropout: float,
    hidden: int,
) -> Graph:
    check_counts(model, in_channels, num_classes)
    p = dropout_p(model, dropout)
    check_int(model, "hidden", hidden)
    size = pair(model, input_size)
    rng = make_rng(rng)
    layers: list[Layer] = []
    channels = in_channels
    for v in VGG_CONFIGS[model]:
        if v == "M":
            layers.append(MaxPool2D(2))
            continue
        assert isinstance(v, int)
        layers.append(Conv2D(channels, v, 3, padding=1, rng=rng))  # biased even before BN, as torchvision
        layers += [BatchNorm2D(v), ReLU()] if batch_norm else [ReLU()]
        channels = v
    classifier = Sequential(
        Dense(512 * 7 * 7, hidden, rng=rng),
        ReLU(),
        Dropout(p, rng=rng),
        Dense(hidden, hidden, rng=rng),
        ReLU(),
        Dropout(p, rng=rng),
        Dense(hidden, num_classes, rng=rng),
    )
    net = _net(Sequential(*layers), 7, classifier)
    init_like_torchvision(net, "vgg", rng)
    check_size(model, net, in_channels, size, 32)
    return net


def vgg11(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    batch_norm: bool = False,
    dropout: float = 0.5,
    hidden: int = 4096,
) -> Graph:
    """VGG-11 (configuration A): 132.9M parameters at 1000 classes; torchvision's keys.

    Args:
        batch_norm: BatchNorm after each conv (torchvision's ``vgg11_bn``; its keys shift).
        dropout: probability of the two Dropouts of the classifier (torchvision's 0.5).
        hidden: width of the two hidden dense layers (torchvision: 4096; smaller for small data).

    The smallest input is 32x32 (five 2x2 pools).

    Example:
        >>> vgg11(input_size=32, num_classes=10, rng=0, hidden=16).output_shape((2, 3, 32, 32))
        (2, 10)
    """
    return _vgg("vgg11", in_channels, input_size, num_classes, rng, batch_norm, dropout, hidden)


def vgg16(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    batch_norm: bool = False,
    dropout: float = 0.5,
    hidden: int = 4096,
) -> Graph:
    """VGG-16 (configuration D): 138.4M parameters at 1000 classes; torchvision's keys.

    Args: as ``vgg11``.

    Example:
        >>> vgg16(input_size=32, num_classes=10, rng=0, hidden=16).output_shape((2, 3, 32, 32))
        (2, 10)
    """
    return _vgg("vgg16", in_channels, input_size, num_classes, rng, batch_norm, dropout, hidden)
