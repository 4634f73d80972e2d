"""Every cnnlab layer type, for the interop tests: one example of each, and one model with all.

``layer_example(cls)`` builds one layer of any registered type from its constructor's
signature (``EXAMPLE_ARGS`` by argument name), so the per-layer tests run over the registry
itself: a new layer file is tested without an edit here, or fails with a message saying what
to add. ``build_every_layer_model`` chains them with the options PyTorch maps differently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from cnnlab.errors import ShapeError
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.graph import Graph
from cnnlab.layers.masked_pool1d import MaskedMaxPool1D
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential

#: Input of ``every_layer_model``: (C, H, W).
EVERY_LAYER_INPUT = (3, 11, 10)

#: Values of required constructor arguments, by name (callables are called for a fresh value).
EXAMPLE_ARGS: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 4,
    "num_features": 4,
    "in_features": 4,
    "out_features": 4,
    "kernel_size": 3,
    "size": 3,  # LocalResponseNorm
    "groups": 2,  # ChannelShuffle
    "output_size": (3, 2),  # AdaptiveAvgPool2D
    "start": 1,  # ChannelSlice
    "stop": 3,
    "block": lambda: Sequential(Conv2D(4, 4, 3, padding=1, rng=5), Tanh()),
}

#: The layers a ``*layers`` argument gets (Sequential).
EXAMPLE_CHILDREN: Callable[[], list[Layer]] = lambda: [Conv2D(4, 4, 3, rng=6), ReLU()]  # noqa: E731

#: Example inputs without the batch axis, tried in order until the layer accepts one.
EXAMPLE_INPUTS: tuple[tuple[int, ...], ...] = ((4, 7, 7), (4, 9), (4,))


def normal_input(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.normal(size=shape)


class Example(NamedTuple):
    """A layer, one input shape without the batch axis, and how to draw an input batch."""

    layer: Layer
    input_shape: tuple[int, ...]
    make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] = normal_input


def example_graph(rng: int = 0) -> Graph:
    """An Inception-like Graph on (4, H, W): three branches joined by Concat, a fan-out, an Add."""
    g = Graph("x")
    g.add("b1", Conv2D(4, 3, 1, rng=rng), "x")
    g.add(
        "b2", Sequential(Conv2D(4, 2, 1, rng=rng + 1), ReLU(), Conv2D(2, 3, 3, padding=1, rng=rng + 2)), "x"
    )
    g.add("b3", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(4, 2, 1, rng=rng + 3)), "x")
    g.add("cat", Concat(), ["b1", "b2", "b3"])
    g.add("act", ReLU(), "cat")
    g.add("proj", Conv2D(8, 8, 1, rng=rng + 4), "act")
    g.output(g.add("sum", Add(), ["act", "proj", "cat"]))
    return g


def masked_pool_graph(rng: int = 0) -> Graph:
    """MaskedMaxPool1D where it lives: ids (N, L) -> Embedding -> Conv1D -> pool that reads the ids."""
    g = Graph("tokens")
    g.add("embed", Embedding(7, 4, padding_idx=0, rng=rng), "tokens")
    g.add("conv", Conv1D(4, 3, 2, rng=rng + 1), "embed")
    g.output(g.add("pool", MaskedMaxPool1D(), ["conv", "tokens"]))
    return g


def padded_ids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Token ids in 1..6 with padding (0) at the end of every row but the first."""
    ids = rng.integers(1, 7, shape)  # (N, L)
    for n in range(1, shape[0]):
        ids[n, shape[1] - n :] = 0
    return ids


#: Layers the signature cannot build (e.g. integer inputs): name -> () -> Example.
EXAMPLES: dict[str, Callable[[], Example]] = {
    "Graph": lambda: Example(example_graph(), (4, 7, 7)),
    "Embedding": lambda: Example(
        Embedding(7, 4, padding_idx=0, rng=0), (5,), lambda rng, shape: rng.integers(0, 7, shape)
    ),
    "MaskedMaxPool1D": lambda: Example(masked_pool_graph(), (6,), padded_ids),
}


def layer_example(cls: type[Layer]) -> Example:
    """One ``cls`` layer built from ``EXAMPLE_ARGS``, an input shape (no batch axis) it takes,
    and its input maker (normal floats unless ``EXAMPLES`` says otherwise)."""
    if cls.__name__ in EXAMPLES:
        return EXAMPLES[cls.__name__]()
    kwargs: dict[str, Any] = {}
    children: list[Layer] = []
    for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            children = EXAMPLE_CHILDREN()
        elif param.name == "rng":
            kwargs["rng"] = 0
        elif param.default is inspect.Parameter.empty:
            if param.name not in EXAMPLE_ARGS:
                raise LookupError(
                    f"{cls.__name__}: add a value for its required argument `{param.name}` to "
                    "EXAMPLE_ARGS (or the layer to EXAMPLES) in tests/interop/every_layer.py"
                )
            value = EXAMPLE_ARGS[param.name]
            kwargs[param.name] = value() if callable(value) else value
    layer = cls(*children, **kwargs)
    for shape in EXAMPLE_INPUTS:
        try:
            layer.output_shape((2, *shape))
        except ShapeError:
            continue
        return Example(layer, shape)
    raise LookupError(
        f"{cls.__name__}: none of the inputs {EXAMPLE_INPUTS} fits {layer!r}; add the layer to "
        "EXAMPLES in tests/interop/every_layer.py"
    )


def build_every_layer_model(dropout: float = 0.3, rng: int = 0) -> Sequential:
    """One model with every cnnlab layer type and the options PyTorch maps differently."""
    return Sequential(
        Conv2D(3, 4, 3, stride=2, padding="same", rng=rng),  # "same" at stride 2: Conv2dSame
        BatchNorm2D(4, eps=1e-3, momentum=0.2),
        LeakyReLU(0.2),
        Conv2D(4, 6, (3, 2), padding="same", rng=rng + 1),  # "same" at stride 1, even kernel
        ELU(0.7),
        Maxout(2),  # 6 -> 3 channels
        Conv2D(3, 4, 3, padding=(2, 1), dilation=(2, 1), bias=False, rng=rng + 2),
        MaxPool2D(3, stride=2, padding=1, ceil_mode=True),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=rng + 3), Tanh())),
        Residual(Sequential(Conv2D(4, 6, 1, stride=2, rng=rng + 4)), Conv2D(4, 6, 1, stride=2, rng=rng + 5)),
        ReLU(),
        AvgPool2D(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False),
        AvgPool2D((2, 1)),
        GlobalAvgPool2D(),
        Flatten(),
        Dense(6, 8, rng=rng + 6),
        BatchNorm1D(8, eps=1e-2, momentum=0.3),  # eps bounds 1/std: features after pooling vary little
        Sigmoid(),
        Dropout(dropout, rng=rng + 7),
        Dense(8, 6, bias=False, rng=rng + 8),
        Maxout(3),
        Softmax(),
    )
