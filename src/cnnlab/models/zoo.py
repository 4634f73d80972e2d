"""The model zoo: classic small CNNs that adapt to input channels, size and class count.

Every builder takes ``in_channels``, ``input_size`` (H, W), ``num_classes`` and ``rng`` and
returns a ``Sequential``. One ``rng`` (Generator or seed) is threaded through every layer
in order, so the same seed gives the same weights. Sizes of the dense layers are computed
with ``output_shape``, so inputs whose size does not divide evenly just use the floors.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from cnnlab.errors import ShapeError, arg_error, check_int
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ELU, LeakyReLU, ReLU, Sigmoid, Tanh
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic import CLASSIC

Size = int | tuple[int, int]
ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}


def _pair(model: str, input_size: Size) -> tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise arg_error(model, "input_size", "a positive int or (H, W) pair", input_size)
    return size[0], size[1]


def _activation(model: str, name: str) -> Layer:
    if name not in ACTIVATIONS:
        raise arg_error(model, "activation", f"one of {sorted(ACTIVATIONS)}", name)
    return ACTIVATIONS[name]()


def _dropout(model: str, p: Any) -> float:
    """The dropout probability, checked here so the error names the model's own argument."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= float(p) < 1:
        raise arg_error(model, "dropout", "a number with 0 <= dropout < 1 (0: none)", p)
    return float(p)


def _shape(model: str, layers: list[Layer], in_channels: int, size: tuple[int, int]) -> tuple[int, ...]:
    """Output shape of ``layers`` for one (C, H, W) input, with the model name on errors."""
    try:
        return Sequential(*layers).output_shape((1, in_channels, *size))
    except ShapeError as exc:
        raise ShapeError(f"{model}: input_size {size} is too small for this model: {exc}") from None


def _head(model: str, features: list[Layer], in_channels: int, size: tuple[int, int]) -> int:
    """Append Flatten to ``features`` and return the flattened size."""
    features.append(Flatten())
    return _shape(model, features, in_channels, size)[1]


def lenet5(
    in_channels: int = 1,
    input_size: Size = (28, 28),
    num_classes: int = 10,
    rng: RngLike = None,
    activation: str = "relu",
    pool: str = "max",
) -> Sequential:
    """LeNet-5 (LeCun et al., 1998): conv5x5(6) - pool - conv5x5(16) - pool - 120 - 84 - classes.

    The first conv uses padding 2 (a 28x28 digit becomes the 32x32 input of the paper's
    valid conv); the second is valid when the map is at least 10 wide, else "same", so
    8x8 digits work too. Defaults are the modern ReLU and max pooling;
    ``activation="tanh", pool="avg"`` is closer to the original.

    Example:
        >>> lenet5(rng=0).output_shape((2, 1, 28, 28))
        (2, 10)
    """
    H, W = _pair("lenet5", input_size)
    if pool not in ("max", "avg"):
        raise arg_error("lenet5", "pool", "'max' or 'avg'", pool)
    Pool = MaxPool2D if pool == "max" else AvgPool2D
    rng = make_rng(rng)
    features: list[Layer] = [Conv2D(in_channels, 6, 5, padding=2, rng=rng), _activation("lenet5", activation)]
    if min(H, W) >= 2:
        features.append(Pool(2))
    _, _, h, w = _shape("lenet5", features, in_channels, (H, W))
    padding = 0 if min(h, w) >= 10 else 2
    features += [Conv2D(6, 16, 5, padding=padding, rng=rng), _activation("lenet5", activation)]
    if min(_shape("lenet5", features, in_channels, (H, W))[2:]) >= 2:
        features.append(Pool(2))
    flat = _head("lenet5", features, in_channels, (H, W))
    return Sequential(
        *features,
        Dense(flat, 120, rng=rng),
        _activation("lenet5", activation),
        Dense(120, 84, rng=rng),
        _activation("lenet5", activation),
        Dense(84, num_classes, rng=rng),
    )


def small(
    in_channels: int = 1, input_size: Size = (28, 28), num_classes: int = 10, rng: RngLike = None
) -> Sequential:
    """The reference CNN: two conv3x3-ReLU-maxpool stages, then Dense(128) and the classifier.

    Conv2D(C, 32, 3, padding=1) - ReLU - MaxPool2D(2) - Conv2D(32, 64, 3, padding=1) - ReLU -
    MaxPool2D(2) - Flatten - Dense(64 * floor(H/4) * floor(W/4), 128) - ReLU - Dense(128, classes).

    Example:
        >>> sum(p.value.size for p in small(rng=0).parameters())  # 320 + 18496 + 401536 + 1290
        421642
    """
    rng = make_rng(rng)
    size = _pair("small", input_size)
    features: list[Layer] = [
        Conv2D(in_channels, 32, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, rng=rng),
        ReLU(),
        MaxPool2D(2),
    ]
    flat = _head("small", features, in_channels, size)  # 64 * (H // 4) * (W // 4)
    return Sequential(*features, Dense(flat, 128, rng=rng), ReLU(), Dense(128, num_classes, rng=rng))


def small_bn(
    in_channels: int = 1,
    input_size: Size = (28, 28),
    num_classes: int = 10,
    rng: RngLike = None,
    dropout: float = 0.0,
) -> Sequential:
    """``small`` with BatchNorm2D after each conv (conv bias dropped: BN's shift replaces it).

    Args:
        dropout: probability of a Dropout before the last Dense (0 for none).

    Example:
        >>> small_bn(input_size=8, rng=0, dropout=0.5).output_shape((3, 1, 8, 8))
        (3, 10)
    """
    dropout = _dropout("small_bn", dropout)
    rng = make_rng(rng)
    size = _pair("small_bn", input_size)
    features: list[Layer] = [
        Conv2D(in_channels, 32, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(32),
        ReLU(),
        MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(64),
        ReLU(),
        MaxPool2D(2),
    ]
    flat = _head("small_bn", features, in_channels, size)
    head: list[Layer] = [Dense(flat, 128, rng=rng), ReLU()]
    if dropout > 0:
        head.append(Dropout(dropout, rng=rng))
    return Sequential(*features, *head, Dense(128, num_classes, rng=rng))


def vgg(
    in_channels: int = 1,
    input_size: Size = (28, 28),
    num_classes: int = 10,
    rng: RngLike = None,
    depth: int = 3,
    width: int = 32,
    batch_norm: bool = True,
    dropout: float = 0.0,
    hidden: int = 128,
    widths: Sequence[int] | None = None,
) -> Sequential:
    """A small VGG (Simonyan & Zisserman, 2014): ``depth`` blocks of two conv3x3 + maxpool.

    Block ``i`` has ``width * 2**i`` channels, or ``widths[i]`` when ``widths`` is given
    (then ``depth`` and ``width`` are ignored: one block per entry). Pooling stops once the
    map is 1 pixel wide. Then Flatten - Dense(hidden) - ReLU - [Dropout] - Dense(classes).

    The first block runs at full resolution, so it costs as much compute per channel pair
    as a block at half the size with twice the channels: ``widths=[16, 64]`` on 28x28
    images needs 61% of the forward FLOPs of ``depth=2, width=32`` (22.9M vs 37.6M).

    Example:
        >>> vgg(in_channels=3, input_size=32, depth=2, width=8, rng=0).output_shape((1, 3, 32, 32))
        (1, 10)
        >>> vgg(widths=[16, 64], rng=0).layers[7]  # the first conv of block 2
        Conv2D(16, 64, kernel_size=3, padding=1, bias=False)
    """
    dropout = _dropout("vgg", dropout)
    if widths is None:
        check_int("vgg", "depth", depth)
        check_int("vgg", "width", width)
        widths = [width * 2**i for i in range(depth)]
    elif (
        isinstance(widths, (str, bytes))
        or not isinstance(widths, Sequence)
        or not widths
        or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)
    ):
        raise arg_error("vgg", "widths", "a non-empty list of positive ints (channels per block)", widths)
    rng = make_rng(rng)
    size = _pair("vgg", input_size)
    features: list[Layer] = []
    channels = in_channels
    for out in widths:
        for _ in range(2):
            features.append(Conv2D(channels, out, 3, padding=1, bias=not batch_norm, rng=rng))
            features += [BatchNorm2D(out), ReLU()] if batch_norm else [ReLU()]
            channels = out
        _, _, h, w = _shape("vgg", features, in_channels, size)
        if min(h, w) >= 2:
            features.append(MaxPool2D(2))
    flat = _head("vgg", features, in_channels, size)
    head: list[Layer] = [Dense(flat, hidden, rng=rng), ReLU()]
    if dropout > 0:
        head.append(Dropout(dropout, rng=rng))
    return Sequential(*features, *head, Dense(hidden, num_classes, rng=rng))


def _basic_block(c_in: int, c_out: int, stride: int, rng: Any) -> Residual:
    block = Sequential(
        Conv2D(c_in, c_out, 3, stride=stride, padding=1, bias=False, rng=rng),
        BatchNorm2D(c_out),
        ReLU(),
        Conv2D(c_out, c_out, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(c_out),
    )
    shortcut = None
    if stride != 1 or c_in != c_out:  # a 1x1 conv maps x to the block's output shape
        shortcut = Sequential(Conv2D(c_in, c_out, 1, stride=stride, bias=False, rng=rng), BatchNorm2D(c_out))
    return Residual(block, shortcut)


def resnet(
    in_channels: int = 1,
    input_size: Size = (28, 28),
    num_classes: int = 10,
    rng: RngLike = None,
    depth: int = 3,
    width: int = 16,
    stages: int | None = None,
) -> Sequential:
    """A small ResNet (He et al., 2016): stem conv, ``depth`` basic blocks, global pool, dense.

    The blocks are split over ``stages`` (default ``min(3, depth)``); the first block of
    each later stage doubles the channels and halves the map (stride 2, while the map is
    wider than 1), with a 1x1 conv + BN shortcut. Each block is followed by ReLU.

    Example:
        >>> resnet(in_channels=3, input_size=32, depth=3, width=8, rng=0).output_shape((2, 3, 32, 32))
        (2, 10)
    """
    if not isinstance(depth, int) or depth < 1:
        raise arg_error("resnet", "depth", "a positive int", depth)
    stages = min(3, depth) if stages is None else stages
    if not isinstance(stages, int) or not 1 <= stages <= depth:
        raise arg_error("resnet", "stages", f"an int from 1 to depth={depth}", stages)
    rng = make_rng(rng)
    size = _pair("resnet", input_size)
    layers: list[Layer] = [
        Conv2D(in_channels, width, 3, padding=1, bias=False, rng=rng),
        BatchNorm2D(width),
        ReLU(),
    ]
    channels = width
    for i in range(depth):
        stage = i * stages // depth
        first_of_stage = i > 0 and stage != (i - 1) * stages // depth
        _, _, h, w = _shape("resnet", layers, in_channels, size)
        stride = 2 if first_of_stage and min(h, w) >= 2 else 1
        out = width * 2**stage
        layers += [_basic_block(channels, out, stride, rng), ReLU()]
        channels = out
    layers.append(GlobalAvgPool2D())  # (N, C, H, W) -> (N, C): Dense follows directly
    return Sequential(*layers, Dense(channels, num_classes, rng=rng))


MODELS: dict[str, Callable[..., Sequential | Graph]] = {
    "lenet5": lenet5,
    "small": small,
    "small_bn": small_bn,
    "vgg": vgg,
    "resnet": resnet,
    **CLASSIC,  # alexnet, vgg11, ..., shufflenet_v2_x1_0: torchvision's layouts and keys (Graphs)
}

#: The arguments every zoo model takes first; the rest of its signature are its options.
COMMON_ARGS = ("in_channels", "input_size", "num_classes", "rng")


def model_options(name: str) -> tuple[str, ...]:
    """The options zoo model ``name`` takes (``model_args`` keys), read from its signature.

    Example:
        >>> model_options("small_bn"), model_options("small")
        (('dropout',), ())
    """
    return tuple(p for p in inspect.signature(MODELS[name]).parameters if p not in COMMON_ARGS)


def names_text() -> str:
    """The zoo's names for help texts: the lecture's small models, then the classic architectures.

    Example:
        >>> names_text()[:64]
        'lenet5, small, small_bn, vgg, resnet; the classic architectures '
    """
    small = [name for name in MODELS if name not in CLASSIC]
    return f"{', '.join(small)}; the classic architectures {', '.join(CLASSIC)}"


def options_table() -> str:
    """Which zoo model takes which options, in one line: ``lenet5: activation, pool; small: none; ...``."""
    return "; ".join(f"{name}: {', '.join(model_options(name)) or 'none'}" for name in MODELS)


def build_model(
    name: str,
    in_channels: int = 1,
    input_size: Size = (28, 28),
    num_classes: int = 10,
    rng: RngLike = None,
    **kwargs: Any,
) -> Sequential | Graph:
    """Build zoo model ``name`` (a key of ``MODELS``); ``kwargs`` go to its function.

    Example:
        >>> build_model("small", input_size=(8, 8), num_classes=3, rng=0).output_shape((5, 1, 8, 8))
        (5, 3)
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}. Valid names: {', '.join(MODELS)}")
    try:
        return MODELS[name](in_channels, input_size, num_classes, rng, **kwargs)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        raise ValueError(f"build_model({name!r}): {exc}. Options of each model: {options_table()}") from None
