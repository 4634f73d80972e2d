"""MobileNetV2 (Sandler et al., 2018, arXiv:1801.04381), torchvision's ``mobilenet_v2``.

Inverted residual blocks: a 1x1 conv expands the channels (by t = 6), a 3x3 depthwise conv
(``groups`` = channels) filters each channel on its own, and a linear 1x1 conv projects
back down, with no activation after it. Where the shape is kept (stride 1, same channels)
the block's input is added to its output. Activations are ReLU6 (min(max(x, 0), 6)).
Keys as torchvision's: ``features.0.0.weight``, ``features.2.conv.1.0.weight``, ``classifier.1.weight``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations_extra import ReLU6
from cnnlab.layers.base import Layer
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add
from cnnlab.layers.pooling import GlobalAvgPool2D
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic.common import Size, check_counts, check_size, conv_bn, dropout_p, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision

#: (expansion t, channels c, blocks n, first stride s) of each stage, from the paper's Table 2.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def conv_bn_relu6(
    c_in: int, c_out: int, kernel: int, rng: Any, stride: int = 1, groups: int = 1
) -> Sequential:
    """torchvision's ``Conv2dNormActivation``: conv (no bias, padding (k-1)//2) - BN - ReLU6."""
    return Sequential(*conv_bn(c_in, c_out, kernel, rng, stride=stride, groups=groups), ReLU6())


def inverted_residual(c_in: int, c_out: int, stride: int, t: int, rng: Any) -> Graph:
    """Expand (1x1, t times, unless t = 1) - depthwise 3x3 - project (1x1, linear); + x if shapes match."""
    hidden = c_in * t
    layers: list[Layer] = [conv_bn_relu6(c_in, hidden, 1, rng)] if t != 1 else []
    layers.append(conv_bn_relu6(hidden, hidden, 3, rng, stride=stride, groups=hidden))
    layers += conv_bn(hidden, c_out, 1, rng)  # the linear bottleneck: no activation
    g = Graph("x")
    out = g.add("conv", Sequential(*layers), "x")
    if stride == 1 and c_in == c_out:
        out = g.add("add", Add(), ["x", "conv"])
    g.output(out)
    return g


def mobilenet_v2(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    dropout: float = 0.2,
) -> Graph:
    """MobileNetV2 (width 1.0): 3.5M parameters at 1000 classes; torchvision's keys.

    Args:
        dropout: probability of the Dropout before the last Dense (torchvision's 0.2).

    Example:
        >>> net = mobilenet_v2(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[5]
        ((2, 10), 'features.1.conv.0.0.weight')
    """
    check_counts("mobilenet_v2", in_channels, num_classes)
    p = dropout_p("mobilenet_v2", dropout)
    size = pair("mobilenet_v2", input_size)
    rng = make_rng(rng)
    blocks: list[Layer] = [conv_bn_relu6(in_channels, 32, 3, rng, stride=2)]
    channels = 32
    for t, c, n, s in STAGES:
        for i in range(n):
            blocks.append(inverted_residual(channels, c, s if i == 0 else 1, t, rng))
            channels = c
    blocks.append(conv_bn_relu6(channels, 1280, 1, rng))
    net = Graph("x")
    net.add("features", Sequential(*blocks), "x")
    net.add("avgpool", GlobalAvgPool2D(), "features")  # (N, 1280)
    net.output(
        net.add("classifier", Sequential(Dropout(p, rng=rng), Dense(1280, num_classes, rng=rng)), "avgpool")
    )
    init_like_torchvision(net, "mobilenet", rng)
    check_size("mobilenet_v2", net, in_channels, size, 1)
    return net
