"""Layer.flops and Layer.config_parameters: each layer knows its own cost and size."""

from __future__ import annotations

import math

import pytest

from cnnlab.layers.activations import Maxout, ReLU
from cnnlab.layers.base import to_config
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.registry import config_parameter_count
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential


def _model() -> Sequential:
    return Sequential(
        Conv2D(3, 4, (3, 2), stride=2, padding=1, dilation=(1, 2), bias=False, rng=0),
        BatchNorm2D(4),
        ReLU(),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=1)), Conv2D(4, 4, 1, rng=2)),
        MaxPool2D(3, stride=2, padding=1),
        AvgPool2D(2, stride=1),
        Maxout(2),
        GlobalAvgPool2D(),
        Flatten(),
        Dense(2, 6, rng=3),
        BatchNorm1D(6),
        Dropout(0.5, rng=4),
    )


def test_leaf_flops_by_hand():
    conv = Conv2D(3, 4, (3, 2), stride=2, padding=1, dilation=(1, 2), bias=False, rng=0)
    _, C, H, W = conv.output_shape((1, 3, 9, 8))
    assert conv.flops((1, 3, 9, 8)) == 2 * 3 * 3 * 2 * C * H * W  # no bias add
    assert Conv2D(2, 5, 3, rng=0).flops((1, 2, 5, 5)) == 2 * 2 * 9 * 5 * 3 * 3 + 5 * 3 * 3
    assert Dense(7, 3, rng=0).flops((1, 7)) == 2 * 7 * 3 + 3
    assert MaxPool2D(3, stride=2, padding=1).flops((1, 4, 5, 5)) == 4 * 3 * 3 * 9
    assert AvgPool2D((2, 1)).flops((1, 2, 4, 3)) == 2 * 2 * 3 * 2
    assert BatchNorm2D(4).flops((1, 4, 3, 3)) == 2 * 36
    assert ReLU().flops((1, 4, 3, 3)) == 36
    assert Flatten().flops((1, 4, 3, 3)) == 0
    assert Dropout(0.5).flops((1, 10)) == 0


def test_containers_sum_their_children():
    model = _model()
    shape: tuple[int, ...] = (1, 3, 9, 8)
    total = 0
    for layer in model.layers:
        total += layer.flops(shape)
        shape = layer.output_shape(shape)
    assert model.flops((1, 3, 9, 8)) == total
    residual = model.layers[3]
    assert isinstance(residual, Residual)
    x_shape = (1, 4, 5, 4)
    children = residual.children()
    expected = children["block"].flops(x_shape) + children["shortcut"].flops(x_shape) + math.prod(x_shape)
    assert residual.flops(x_shape) == expected
    rows = model.summary((3, 9, 8), print_fn=None)
    assert sum(r["flops"] for r in rows) == model.flops((1, 3, 9, 8))


def test_config_parameters_match_the_built_layers():
    for prefix, layer in _model().named_layers():
        own = sum(v.size for v in layer.params.values())
        assert type(layer).config_parameters(to_config(layer)["args"]) == own, prefix or "model"
    model = _model()
    assert config_parameter_count(to_config(model)) == sum(p.value.size for p in model.parameters())


@pytest.mark.parametrize("args", [{}, {"in_channels": "3", "out_channels": None}, {"kernel_size": [True, 2]}])
def test_config_parameters_of_garbage_args_count_nothing(args):
    assert Conv2D.config_parameters(args) == 0
    assert Dense.config_parameters(args) == 0
    assert BatchNorm2D.config_parameters(args) == 0
