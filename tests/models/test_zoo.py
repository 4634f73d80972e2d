"""The model zoo: shapes for several inputs, parameter counts by hand, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.residual import Residual
from cnnlab.models.classic import CLASSIC
from cnnlab.models.zoo import MODELS, build_model, lenet5, resnet, small, small_bn, vgg

#: The small zoo models; the classic ImageNet architectures: tests/models/test_classic_zoo.py.
SMALL_MODELS = [name for name in MODELS if name not in CLASSIC]

INPUTS = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]


def n_params(model) -> int:
    return sum(p.value.size for p in model.parameters())


@pytest.mark.parametrize("shape", INPUTS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_output_is_n_by_classes(name, shape):
    kwargs = {"depth": 2, "width": 8} if name in ("vgg", "resnet") else {}
    model = build_model(name, in_channels=shape[0], input_size=shape[1:], num_classes=7, rng=0, **kwargs)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    assert model.output_shape(x.shape) == (2, 7)
    y = model.forward(x)
    assert y.shape == (2, 7) and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert model.backward(np.ones_like(y)).shape == x.shape


def test_small_parameter_count_by_hand():
    model = small(in_channels=1, input_size=(28, 28), num_classes=10, rng=0)
    per_layer = [n_params(layer) for layer in model.layers if layer.params]
    # conv1: 32*1*3*3 + 32; conv2: 64*32*3*3 + 64; dense: 64*7*7*128 + 128; out: 128*10 + 10
    assert per_layer == [320, 18496, 401536, 1290]
    assert n_params(model) == 320 + 18496 + 401536 + 1290


def test_small_matches_the_reference_layout():
    model = small(in_channels=3, input_size=(32, 32), num_classes=5, rng=0)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "ReLU", "MaxPool2D", "Conv2D", "ReLU", "MaxPool2D", "Flatten", "Dense", "ReLU", "Dense",
    ]  # fmt: skip
    conv = model[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) in [
        (3, 32, 3, 1),
        (3, 32, (3, 3), (1, 1)),
    ]
    assert model[7].in_features == 64 * 8 * 8 and model[9].out_features == 5


def test_small_uses_floors_for_sizes_not_divisible_by_4():
    assert small(input_size=(30, 27), rng=0)[7].in_features == 64 * 7 * 6


def test_small_bn_has_batchnorm_and_optional_dropout():
    names = [type(layer).__name__ for layer in small_bn(rng=0).layers]
    assert names.count("BatchNorm2D") == 2 and "Dropout" not in names
    model = small_bn(rng=0, dropout=0.3)
    assert isinstance(model[-2], Dropout) and model[-2].p == 0.3


def test_lenet5_classic_sizes():
    model = lenet5(rng=0)  # 28 -> pad 2 -> 28 -> 14 -> valid conv -> 10 -> 5
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    assert [(d.in_features, d.out_features) for d in dense] == [(16 * 5 * 5, 120), (120, 84), (84, 10)]
    tiny = lenet5(input_size=8, rng=0)  # 8 -> 8 -> 4 -> "same" conv -> 4 -> 2
    assert next(layer for layer in tiny.layers if isinstance(layer, Dense)).in_features == 16 * 2 * 2


def test_vgg_doubles_width_and_stops_pooling_at_one_pixel():
    model = vgg(input_size=(4, 4), depth=4, width=4, rng=0)
    convs = [layer.out_channels for layer in model.layers if isinstance(layer, Conv2D)]
    assert convs == [4, 4, 8, 8, 16, 16, 32, 32]
    assert sum(isinstance(layer, MaxPool2D) for layer in model.layers) == 2  # 4 -> 2 -> 1, then none
    assert model.output_shape((1, 1, 4, 4)) == (1, 10)
    assert "BatchNorm2D" not in [type(layer).__name__ for layer in vgg(batch_norm=False, rng=0).layers]


def test_vgg_widths_sets_each_block_and_replaces_depth_and_width():
    model = vgg(input_size=(8, 8), depth=3, width=64, widths=[3, 5], rng=0)
    convs = [(layer.in_channels, layer.out_channels) for layer in model.layers if isinstance(layer, Conv2D)]
    assert convs == [(1, 3), (3, 3), (3, 5), (5, 5)]
    dense = next(layer for layer in model.layers if isinstance(layer, Dense))
    assert dense.in_features == 5 * 2 * 2  # 8 -> 4 -> 2
    same = vgg(input_size=8, depth=2, width=4, rng=1), vgg(input_size=8, widths=[4, 8], rng=1)
    a, b = (m.state_dict() for m in same)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", [[], [16, 0], "16", [16.0], (True,), 16])
def test_vgg_bad_widths_are_named(bad):
    with pytest.raises(ValueError, match=r"vgg: argument `widths` must be a non-empty list of positive ints"):
        vgg(widths=bad)


def test_resnet_shortcut_only_where_the_shape_changes():
    model = resnet(in_channels=3, input_size=16, depth=3, width=4, rng=0)
    blocks = [layer for layer in model.layers if isinstance(layer, Residual)]
    assert [b.shortcut is not None for b in blocks] == [False, True, True]
    assert model.output_shape((2, 3, 16, 16)) == (2, 10)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_same_seed_same_weights(name):
    a, b, c = (build_model(name, input_size=8, rng=seed) for seed in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert not all(np.array_equal(sa[k], sc[k]) for k in sa)


def test_unknown_model_lists_valid_names():
    with pytest.raises(
        ValueError,
        match=r"unknown model 'inception_v3'. Valid names: lenet5, small, small_bn, vgg, resnet, alexnet",
    ):
        build_model("inception_v3")


def test_unknown_keyword():
    with pytest.raises(ValueError, match=r"build_model\('small'\): .*unexpected keyword argument 'depth'"):
        build_model("small", depth=3)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"vgg: argument `depth` must be a positive int. Received: depth=0"):
        vgg(depth=0)
    with pytest.raises(ValueError, match=r"lenet5: argument `activation` must be one of"):
        lenet5(activation="swish")
    with pytest.raises(
        ValueError, match=r"small: argument `input_size` must be a positive int or \(H, W\) pair"
    ):
        small(input_size=(0, 4))


def test_input_too_small_is_a_clear_shape_error():
    with pytest.raises(ShapeError, match=r"small: input_size \(3, 3\) is too small for this model"):
        small(input_size=3)
