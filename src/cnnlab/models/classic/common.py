"""What the classic architectures share: argument checks, named chains, the size check.

torchvision names a model's parts (``conv1``, ``layer1.0.bn2``, ``features.3.squeeze``), and
a cnnlab model that uses the same names loads torchvision's weights key for key. A
``Sequential`` names its children 0, 1, 2, ...; a ``Graph`` names each node, so a part whose
children have names is a ``Graph`` (``chain`` builds the straight-line ones).
"""

from __future__ import annotations

import numbers
from typing import Any

from cnnlab.errors import ShapeError, arg_error, check_int
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.graph import Graph

Size = int | tuple[int, int]


def pair(model: str, input_size: Size) -> tuple[int, int]:
    """``input_size`` as ``(H, W)``; the error names ``model``."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise arg_error(model, "input_size", "a positive int or (H, W) pair", input_size)
    return size[0], size[1]


def check_counts(model: str, in_channels: int, num_classes: int) -> None:
    check_int(model, "in_channels", in_channels)
    check_int(model, "num_classes", num_classes)


def dropout_p(model: str, p: Any) -> float:
    """The dropout probability, checked here so the error names the model's own argument."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= float(p) < 1:
        raise arg_error(model, "dropout", "a number with 0 <= dropout < 1 (0: none)", p)
    return float(p)


def chain(**layers: Layer) -> Graph:
    """A straight-line Graph whose nodes are named like the keywords: ``chain(conv=..., bn=...)``.

    The state_dict keys are then ``conv.weight``, ``bn.running_mean``, ...: torchvision's
    names of a module with named children (``BasicConv2d``, a DenseNet layer).

    Example:
        >>> from cnnlab.layers.activations import ReLU
        >>> g = chain(conv=Conv2D(3, 8, 3, bias=False, rng=0), bn=BatchNorm2D(8), relu=ReLU())
        >>> list(g.state_dict())
        ['conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var']
    """
    graph = Graph("x")
    last = "x"
    for name, layer in layers.items():
        last = graph.add(name, layer, last)
    graph.output(last)
    return graph


def conv_bn(
    c_in: int, c_out: int, kernel: int, rng: Any, stride: int = 1, groups: int = 1, eps: float = 1e-5
) -> list[Layer]:
    """A bias-free ``kernel``x``kernel`` conv with "same"-style padding ``(kernel - 1) // 2``, and BN."""
    conv = Conv2D(
        c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups, bias=False, rng=rng
    )
    return [conv, BatchNorm2D(c_out, eps=eps)]


def check_size(model: str, net: Layer, in_channels: int, size: tuple[int, int], smallest: int) -> None:
    """Raise the ShapeError that names ``model`` and its smallest input when ``size`` is too small."""
    try:
        net.output_shape((1, in_channels, *size))
    except ShapeError as exc:
        # The innermost layer's words; the Graph nodes around it add one-line reprs of whole stages.
        detail = str(exc).rsplit("): ", 1)[-1]
        raise ShapeError(
            f"{model}: input_size {size} is too small for this model (the smallest is "
            f"{smallest}x{smallest}): {detail}"
        ) from None
