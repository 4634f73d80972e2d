"""ResNet-18 and ResNet-50 for ImageNet-sized inputs (He et al., 2016, arXiv:1512.03385).

The layout and the names are torchvision's (``torchvision.models.resnet``): a 7x7 stride-2
stem (``conv1``, ``bn1``, ``relu``, ``maxpool``), four stages ``layer1``..``layer4`` of
blocks, global average pooling and ``fc``. ResNet-18 stacks two-conv basic blocks
(2, 2, 2, 2); ResNet-50 three-conv bottlenecks (1x1 reduce, 3x3, 1x1 expand by 4;
3, 4, 6, 3) with the stride on the 3x3 conv (torchvision's "ResNet v1.5"). The first block
of a stage whose shape changes adds a ``downsample`` shortcut (1x1 conv + BN).

Each block is a Graph: ``out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.
The state_dict keys are torchvision's (``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``),
so its weights load with ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic.common import Size, check_counts, check_size, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision


def _block(c_in: int, width: int, stride: int, bottleneck: bool, rng: Any) -> Graph:
    """One residual block; ``width`` is the 3x3 conv's channels (the output has 4x in a bottleneck)."""
    c_out = width * 4 if bottleneck else width
    g = Graph("x")
    if bottleneck:  # 1x1 reduce, 3x3 (the stride), 1x1 expand
        g.add("conv1", Conv2D(c_in, width, 1, bias=False, rng=rng), "x")
        g.add("bn1", BatchNorm2D(width), "conv1")
        g.add("relu1", ReLU(), "bn1")
        g.add("conv2", Conv2D(width, width, 3, stride=stride, padding=1, bias=False, rng=rng), "relu1")
        g.add("bn2", BatchNorm2D(width), "conv2")
        g.add("relu2", ReLU(), "bn2")
        g.add("conv3", Conv2D(width, c_out, 1, bias=False, rng=rng), "relu2")
        last = g.add("bn3", BatchNorm2D(c_out), "conv3")
    else:
        g.add("conv1", Conv2D(c_in, width, 3, stride=stride, padding=1, bias=False, rng=rng), "x")
        g.add("bn1", BatchNorm2D(width), "conv1")
        g.add("relu1", ReLU(), "bn1")
        g.add("conv2", Conv2D(width, width, 3, padding=1, bias=False, rng=rng), "relu1")
        last = g.add("bn2", BatchNorm2D(width), "conv2")
    skip = "x"
    if stride != 1 or c_in != c_out:  # the shortcut maps x to the block's output shape
        conv = Conv2D(c_in, c_out, 1, stride=stride, bias=False, rng=rng)
        skip = g.add("downsample", Sequential(conv, BatchNorm2D(c_out)), "x")
    g.add("add", Add(), [last, skip])
    g.output(g.add("relu", ReLU(), "add"))
    return g


def _resnet(
    model: str,
    blocks: tuple[int, int, int, int],
    bottleneck: bool,
    in_channels: int,
    input_size: Size,
    num_classes: int,
    rng: RngLike,
) -> Graph:
    check_counts(model, in_channels, num_classes)
    size = pair(model, input_size)
    rng = make_rng(rng)
    net = Graph("x")
    net.add("conv1", Conv2D(in_channels, 64, 7, stride=2, padding=3, bias=False, rng=rng), "x")
    net.add("bn1", BatchNorm2D(64), "conv1")
    net.add("relu", ReLU(), "bn1")
    last = net.add("maxpool", MaxPool2D(3, stride=2, padding=1), "relu")
    channels = 64
    for stage, count in enumerate(blocks):
        width = 64 * 2**stage
        layers: list[Layer] = []
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(_block(channels, width, stride, bottleneck, rng))
            channels = width * 4 if bottleneck else width
        last = net.add(f"layer{stage + 1}", Sequential(*layers), last)
    net.add("avgpool", GlobalAvgPool2D(), last)  # (N, C, H, W) -> (N, C): torchvision's avgpool + flatten
    net.output(net.add("fc", Dense(channels, num_classes, rng=rng), "avgpool"))
    init_like_torchvision(net, "resnet", rng)
    check_size(model, net, in_channels, size, 1)
    return net


def resnet18(
    in_channels: int = 3, input_size: Size = (224, 224), num_classes: int = 1000, rng: RngLike = None
) -> Graph:
    """ResNet-18: basic blocks (2, 2, 2, 2), 11.7M parameters at 1000 classes; torchvision's keys.

    Any input of at least 1x1 works (the stride-2 steps floor down to 1x1, then global pooling).

    Example:
        >>> net = resnet18(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[5:7]
        ((2, 10), ['layer1.0.conv1.weight', 'layer1.0.bn1.weight'])
    """
    return _resnet("resnet18", (2, 2, 2, 2), False, in_channels, input_size, num_classes, rng)


def resnet50(
    in_channels: int = 3, input_size: Size = (224, 224), num_classes: int = 1000, rng: RngLike = None
) -> Graph:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3), 25.6M parameters at 1000 classes; torchvision's keys.

    Example:
        >>> resnet50(input_size=32, num_classes=10, rng=0).output_shape((1, 3, 32, 32))
        (1, 10)
    """
    return _resnet("resnet50", (3, 4, 6, 3), True, in_channels, input_size, num_classes, rng)
