"""ShuffleNetV2 x1.0 (Ma et al., 2018, arXiv:1807.11164), torchvision's ``shufflenet_v2_x1_0``.

Each unit splits the channels: at stride 1 one half passes unchanged and the other goes
through 1x1 conv - 3x3 depthwise conv - 1x1 conv (``branch2``); at stride 2 both branches
(``branch1``: depthwise - 1x1; ``branch2``) see the whole input and halve the map. The two
halves are concatenated and shuffled (``ChannelShuffle(2)``) so that the next unit's split
mixes them. Keys as torchvision's: ``conv1.0.weight``, ``stage2.0.branch1.0.weight``, ``fc.weight``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.channel_slice import ChannelSlice
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.sequential import Sequential
from cnnlab.layers.shuffle import ChannelShuffle
from cnnlab.models.classic.common import Size, check_counts, check_size, pair

#: x1.0: units per stage (2, 3, 4) and channels of conv1, the three stages and conv5.
REPEATS, CHANNELS = (4, 8, 4), (24, 116, 232, 464, 1024)


def _conv1x1_bn_relu(c_in: int, c_out: int, rng: Any) -> list[Layer]:
    return [Conv2D(c_in, c_out, 1, bias=False, rng=rng), BatchNorm2D(c_out), ReLU()]


def _depthwise_bn(channels: int, stride: int, rng: Any) -> list[Layer]:
    conv = Conv2D(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False, rng=rng)
    return [conv, BatchNorm2D(channels)]


def shuffle_unit(c_in: int, c_out: int, stride: int, rng: Any) -> Graph:
    """One unit: split (stride 1) or both branches (stride 2), concat, shuffle the two halves."""
    half = c_out // 2
    g = Graph("x")
    if stride == 1:  # torchvision's x.chunk(2, dim=1)
        left = g.add("x1", ChannelSlice(0, c_in // 2), "x")
        right_in = g.add("x2", ChannelSlice(c_in // 2, c_in), "x")
    else:
        branch1 = Sequential(*_depthwise_bn(c_in, stride, rng), *_conv1x1_bn_relu(c_in, half, rng))
        left = g.add("branch1", branch1, "x")
        right_in = "x"
    branch2 = Sequential(
        *_conv1x1_bn_relu(c_in if stride > 1 else half, half, rng),
        *_depthwise_bn(half, stride, rng),
        *_conv1x1_bn_relu(half, half, rng),
    )
    g.add("branch2", branch2, right_in)
    g.add("cat", Concat(), [left, "branch2"])  # (N, c_out, H, W)
    g.output(g.add("shuffle", ChannelShuffle(2), "cat"))
    return g


def shufflenet_v2_x1_0(
    in_channels: int = 3, input_size: Size = (224, 224), num_classes: int = 1000, rng: RngLike = None
) -> Graph:
    """ShuffleNetV2 x1.0: 2.3M parameters at 1000 classes; torchvision's keys.

    Example:
        >>> net = shufflenet_v2_x1_0(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[5]
        ((2, 10), 'stage2.0.branch1.0.weight')
    """
    check_counts("shufflenet_v2_x1_0", in_channels, num_classes)
    size = pair("shufflenet_v2_x1_0", input_size)
    rng = make_rng(rng)
    net = Graph("x")
    stem = Conv2D(in_channels, CHANNELS[0], 3, stride=2, padding=1, bias=False, rng=rng)
    net.add("conv1", Sequential(stem, BatchNorm2D(CHANNELS[0]), ReLU()), "x")
    last = net.add("maxpool", MaxPool2D(3, stride=2, padding=1), "conv1")
    channels = CHANNELS[0]
    for stage, (repeats, c_out) in enumerate(zip(REPEATS, CHANNELS[1:4], strict=True), start=2):
        units = [shuffle_unit(channels, c_out, 2, rng)]
        units += [shuffle_unit(c_out, c_out, 1, rng) for _ in range(repeats - 1)]
        last = net.add(f"stage{stage}", Sequential(*units), last)
        channels = c_out
    net.add("conv5", Sequential(*_conv1x1_bn_relu(channels, CHANNELS[4], rng)), last)
    net.add("avgpool", GlobalAvgPool2D(), "conv5")  # torchvision's x.mean([2, 3])
    net.output(net.add("fc", Dense(CHANNELS[4], num_classes, rng=rng), "avgpool"))
    check_size("shufflenet_v2_x1_0", net, in_channels, size, 1)
    return net
