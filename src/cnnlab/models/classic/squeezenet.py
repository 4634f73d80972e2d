"""SqueezeNet 1.1 (Iandola et al., 2016, arXiv:1602.07360), torchvision's ``squeezenet1_1``.

AlexNet's accuracy with 1.2M parameters: "fire" modules squeeze the channels with 1x1
convs, then expand them with 1x1 and 3x3 convs side by side, joined by ``Concat``. No
dense layer: the classifier is a 1x1 conv to the classes and a global average.
Keys as torchvision's: ``features.3.squeeze.weight``, ``classifier.1.weight``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic.common import Size, check_counts, check_size, dropout_p, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision


def fire(c_in: int, squeeze: int, expand1x1: int, expand3x3: int, rng: Any) -> Graph:
    """A fire module: 1x1 squeeze - ReLU, then 1x1 and 3x3 expands (each + ReLU) concatenated."""
    g = Graph("x")
    g.add("squeeze", Conv2D(c_in, squeeze, 1, rng=rng), "x")
    g.add("squeeze_activation", ReLU(), "squeeze")
    g.add("expand1x1", Conv2D(squeeze, expand1x1, 1, rng=rng), "squeeze_activation")
    g.add("expand1x1_activation", ReLU(), "expand1x1")
    g.add("expand3x3", Conv2D(squeeze, expand3x3, 3, padding=1, rng=rng), "squeeze_activation")
    g.add("expand3x3_activation", ReLU(), "expand3x3")
    g.output(g.add("cat", Concat(), ["expand1x1_activation", "expand3x3_activation"]))
    return g


def squeezenet1_1(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    dropout: float = 0.5,
) -> Graph:
    """SqueezeNet 1.1: 1.2M parameters at 1000 classes; torchvision's keys.

    Args:
        dropout: probability of the Dropout before the classifier conv (torchvision's 0.5).

    The smallest input is 17x17 (a valid 3x3 stride-2 conv, then three 3x3 stride-2 pools).

    Example:
        >>> net = squeezenet1_1(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[2:4]
        ((2, 10), ['features.3.squeeze.weight', 'features.3.squeeze.bias'])
    """
    check_counts("squeezenet1_1", in_channels, num_classes)
    p = dropout_p("squeezenet1_1", dropout)
    size = pair("squeezenet1_1", input_size)
    rng = make_rng(rng)

    def pool() -> Layer:
        return MaxPool2D(3, stride=2, ceil_mode=True)

    features = Sequential(
        Conv2D(in_channels, 64, 3, stride=2, rng=rng),
        ReLU(),
        pool(),
        fire(64, 16, 64, 64, rng),
        fire(128, 16, 64, 64, rng),
        pool(),
        fire(128, 32, 128, 128, rng),
        fire(256, 32, 128, 128, rng),
        pool(),
        fire(256, 48, 192, 192, rng),
        fire(384, 48, 192, 192, rng),
        fire(384, 64, 256, 256, rng),
        fire(512, 64, 256, 256, rng),
    )
    classifier = Sequential(
        Dropout(p, rng=rng), Conv2D(512, num_classes, 1, rng=rng), ReLU(), GlobalAvgPool2D()
    )
    net = Graph("x")
    net.add("features", features, "x")
    net.output(net.add("classifier", classifier, "features"))  # (N, classes): pooled and flat
    init_like_torchvision(net, "squeezenet", rng, last_conv="classifier.1.")
    check_size("squeezenet1_1", net, in_channels, size, 17)
    return net
