"""GoogLeNet / Inception v1 (Szegedy et al., 2015, arXiv:1409.4842), torchvision's variant.

Nine Inception blocks, each four parallel branches joined by ``Concat`` on the channel
axis: a 1x1 conv; 1x1 then 3x3; 1x1 then a second 3x3 (the paper's 5x5: torchvision's
definition and weights use 3x3 here, so this does too); a 3x3 max pool then a 1x1 conv.
Every conv is torchvision's ``BasicConv2d``: a bias-free conv, BatchNorm (eps 0.001) and
ReLU, with keys ``conv.weight``, ``bn.weight``, ...

This is ``torchvision.models.GoogLeNet(aux_logits=False, transform_input=False)``: the two
auxiliary classifiers of the paper (used only while training, for the gradient of the
early layers) are left out, and the input is not re-normalized inside the model.
"""

from __future__ import annotations

from typing import Any

from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic.common import Size, chain, check_counts, check_size, dropout_p, pair
from cnnlab.models.classic.init_schemes import init_like_torchvision

#: (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj) of each Inception block.
INCEPTIONS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def basic_conv(c_in: int, c_out: int, kernel: int, rng: Any, stride: int = 1, padding: int = 0) -> Graph:
    """torchvision's ``BasicConv2d``: conv (no bias) - BatchNorm (eps 0.001) - ReLU."""
    conv = Conv2D(c_in, c_out, kernel, stride=stride, padding=padding, bias=False, rng=rng)
    return chain(conv=conv, bn=BatchNorm2D(c_out, eps=0.001), relu=ReLU())


def inception(c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, proj: int, rng: Any) -> Graph:
    """Four branches on the same input, concatenated: ``c1 + c3 + c5 + proj`` channels out."""
    g = Graph("x")
    g.add("branch1", basic_conv(c_in, c1, 1, rng), "x")
    g.add("branch2", Sequential(basic_conv(c_in, c3r, 1, rng), basic_conv(c3r, c3, 3, rng, padding=1)), "x")
    g.add("branch3", Sequential(basic_conv(c_in, c5r, 1, rng), basic_conv(c5r, c5, 3, rng, padding=1)), "x")
    pool = MaxPool2D(3, stride=1, padding=1, ceil_mode=True)
    g.add("branch4", Sequential(pool, basic_conv(c_in, proj, 1, rng)), "x")
    g.output(g.add("cat", Concat(), ["branch1", "branch2", "branch3", "branch4"]))
    return g


def googlenet(
    in_channels: int = 3,
    input_size: Size = (224, 224),
    num_classes: int = 1000,
    rng: RngLike = None,
    dropout: float = 0.2,
) -> Graph:
    """GoogLeNet without auxiliary classifiers: 6.6M parameters at 1000 classes; torchvision's keys.

    Args:
        dropout: probability of the Dropout before ``fc`` (torchvision's 0.2).

    The smallest input is 15x15 (three 3x3 and one 2x2 stride-2 pools without padding).

    Example:
        >>> net = googlenet(input_size=32, num_classes=10, rng=0)
        >>> net.output_shape((2, 3, 32, 32)), list(net.state_dict())[:2]
        ((2, 10), ['conv1.conv.weight', 'conv1.bn.weight'])
    """
    check_counts("googlenet", in_channels, num_classes)
    p = dropout_p("googlenet", dropout)
    size = pair("googlenet", input_size)
    rng = make_rng(rng)
    net = Graph("x")
    net.add("conv1", basic_conv(in_channels, 64, 7, rng, stride=2, padding=3), "x")
    net.add("maxpool1", MaxPool2D(3, stride=2, ceil_mode=True), "conv1")
    net.add("conv2", basic_conv(64, 64, 1, rng), "maxpool1")
    net.add("conv3", basic_conv(64, 192, 3, rng, padding=1), "conv2")
    last = net.add("maxpool2", MaxPool2D(3, stride=2, ceil_mode=True), "conv3")
    for name, channels in INCEPTIONS.items():
        last = net.add(name, inception(*channels, rng=rng), last)
        if name in ("inception3b", "inception4e"):  # the pools between the stages
            pool = (
                MaxPool2D(3, stride=2, ceil_mode=True)
                if name == "inception3b"
                else MaxPool2D(2, ceil_mode=True)
            )
            last = net.add("maxpool3" if name == "inception3b" else "maxpool4", pool, last)
    net.add("avgpool", GlobalAvgPool2D(), last)  # (N, 1024)
    net.add("dropout", Dropout(p, rng=rng), "avgpool")
    net.output(net.add("fc", Dense(1024, num_classes, rng=rng), "dropout"))
    init_like_torchvision(net, "googlenet", rng)
    check_size("googlenet", net, in_channels, size, 15)
    return net
