"""DenseNet-121 (Huang et al., 2017, arXiv:1608.06993), torchvision's ``densenet121``.

Inside a dense block every layer reads the concatenation of the block's input and all
earlier layers' outputs, and adds ``growth_rate`` (32) channels of its own. A layer is
BN-ReLU-conv1x1 (to 4 x 32 channels) - BN-ReLU-conv3x3 (to 32). Between the four blocks
(6, 12, 24, 16 layers) a transition halves the channels (BN-ReLU-conv1x1) and the map
(2x2 average pool). Keys as torchvision's: ``features.denseblock1.denselayer1.norm1.weight``.

Memory grows with the square of a block's depth here (each concatenation is a new array,
as in torchvision without ``memory_efficient``).
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.models.classic.common import Size, chain, check_counts, check_size, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision

GROWTH, BN_SIZE, INIT_FEATURES = 32, 4, 64


def dense_layer(c_in: int, rng: Any) -> Graph:
    """BN-ReLU-conv1x1 (to BN_SIZE * GROWTH) - BN-ReLU-conv3x3 (to GROWTH channels)."""
    mid = BN_SIZE * GROWTH
    return chain(
        norm1=BatchNorm2D(c_in),
        relu1=ReLU(),
        conv1=Conv2D(c_in, mid, 1, bias=False, rng=rng),
        norm2=BatchNorm2D(mid),
        relu2=ReLU(),
        conv2=Conv2D(mid, GROWTH, 3, padding=1, bias=False, rng=rng),
    )


def dense_block(c_in: int, layers: int, rng: Any) -> Graph:
    """``layers`` dense layers; layer i reads [x, y_1, ..., y_{i-1}] concatenated."""
    g = Graph("x")
    seen = "x"  # the concatenation so far
    for i in range(1, layers + 1):
        new = g.add(f"denselayer{i}", dense_layer(c_in + (i - 1) * GROWTH, rng), seen)
        seen = g.add(f"cat{i}", Concat(), [seen, new])  # (N, c_in + i * GROWTH, H, W)
    g.output(seen)
    return g


def densenet121(
    in_channels: int = 3, input_size: Size = (224, 224), num_classes: int = 1000, rng: RngLike = None
) -> Graph:
    """DenseNet-121: 8.0M parameters at 1000 classes; torchvision's keys.

    The smallest input is 29x29 (a stride-4 stem, then three transitions halve the map).

    Example:
        >>> net = densenet121(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[5]
        ((2, 10), 'features.denseblock1.denselayer1.norm1.weight')
    """
    check_counts("densenet121", in_channels, num_classes)
    size = pair("densenet121", input_size)
    rng = make_rng(rng)
    features = Graph("x")
    features.add(
        "conv0", Conv2D(in_channels, INIT_FEATURES, 7, stride=2, padding=3, bias=False, rng=rng), "x"
    )
    features.add("norm0", BatchNorm2D(INIT_FEATURES), "conv0")
    features.add("relu0", ReLU(), "norm0")
    last = features.add("pool0", MaxPool2D(3, stride=2, padding=1), "relu0")
    channels = INIT_FEATURES
    for i, layers in enumerate((6, 12, 24, 16), start=1):
        last = features.add(f"denseblock{i}", dense_block(channels, layers, rng), last)
        channels += layers * GROWTH
        if i < 4:
            transition = chain(
                norm=BatchNorm2D(channels),
                relu=ReLU(),
                conv=Conv2D(channels, channels // 2, 1, bias=False, rng=rng),
                pool=AvgPool2D(2),
            )
            last = features.add(f"transition{i}", transition, last)
            channels //= 2
    features.output(features.add("norm5", BatchNorm2D(channels), last))
    net = Graph("x")
    net.add("features", features, "x")
    net.add("relu", ReLU(), "features")
    net.add("avgpool", GlobalAvgPool2D(), "relu")  # (N, 1024)
    net.output(net.add("classifier", Dense(channels, num_classes, rng=rng), "avgpool"))
    init_like_torchvision(net, "densenet", rng)
    check_size("densenet121", net, in_channels, size, 29)
    return net
