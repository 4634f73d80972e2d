"""Pooling: PyTorch parity over a grid of every mode, fast vs general vs loop paths, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError, int_pair
from cnnlab.functional import pool as F
from cnnlab.functional import reference_pool as R
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from torch_compare import compare_with_torch

KERNELS = [1, 2, 3, 4, (2, 3), (3, 1)]
STRIDES = [None, 1, 2, 3]
SIZES = [(5, 7), (6, 6), (4, 5)]


def _paddings(kernel):
    kh, kw = int_pair("test", "kernel", kernel)
    options = [0]
    if kh // 2 >= 1 and kw // 2 >= 1:
        options.append(1)
    elif kh // 2 >= 1:
        options.append((1, 0))
    return options


def _grid(kernel):
    for stride, padding, ceil_mode, (H, W) in itertools.product(
        STRIDES, _paddings(kernel), [False, True], SIZES
    ):
        kh, kw = int_pair("test", "kernel", kernel)
        sh, sw = (kh, kw) if stride is None else int_pair("test", "stride", stride)
        ph, pw = int_pair("test", "padding", padding, 0)
        if (
            F.pool_output_size(H, kh, sh, ph, ceil_mode) < 1
            or F.pool_output_size(W, kw, sw, pw, ceil_mode) < 1
        ):
            continue
        yield {"kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}, (H, W)


def _inputs(rng, shape):
    """Continuous values, small integers (many ties) and ReLU'd normals (many tied zeros)."""
    yield rng.standard_normal(shape)
    yield rng.integers(0, 3, size=shape).astype(np.float64)
    yield np.maximum(rng.standard_normal(shape), 0.0)


@pytest.mark.parametrize("kernel", KERNELS, ids=str)
def test_max_pool_matches_torch(torch, rng, kernel):
    for args, (H, W) in _grid(kernel):
        layer = MaxPool2D(**args)
        for x in _inputs(rng, (2, 3, H, W)):
            dy = rng.standard_normal(layer.output_shape(x.shape))
            fn = lambda t, a=args: torch.nn.functional.max_pool2d(t, **a)  # noqa: E731
            compare_with_torch(torch, layer, fn, x, dy, where=str((args, H, W)))


@pytest.mark.parametrize("kernel", KERNELS, ids=str)
def test_avg_pool_matches_torch(torch, rng, kernel):
    for (args, (H, W)), include in itertools.product(_grid(kernel), [True, False]):
        layer = AvgPool2D(**args, count_include_pad=include)
        x = rng.standard_normal((2, 3, H, W))
        dy = rng.standard_normal(layer.output_shape(x.shape))
        fn = lambda t, a=args, i=include: torch.nn.functional.avg_pool2d(t, **a, count_include_pad=i)  # noqa: E731
        compare_with_torch(torch, layer, fn, x, dy, where=str((args, include, H, W)))


def test_batch_one_and_one_by_one_output(torch, rng):
    cases = [  # (layer, torch function, input H and W)
        (MaxPool2D(3), lambda t: torch.nn.functional.max_pool2d(t, 3), (3, 3)),
        (AvgPool2D(3, padding=1), lambda t: torch.nn.functional.avg_pool2d(t, 3, padding=1), (1, 1)),
        (
            MaxPool2D(2, ceil_mode=True),
            lambda t: torch.nn.functional.max_pool2d(t, 2, ceil_mode=True),
            (1, 1),
        ),
        (
            AvgPool2D((3, 2), ceil_mode=True),
            lambda t: torch.nn.functional.avg_pool2d(t, (3, 2), ceil_mode=True),
            (2, 1),
        ),
    ]
    for layer, fn, (H, W) in cases:
        x = rng.standard_normal((1, 2, H, W))
        dy = rng.standard_normal((1, 2, 1, 1))
        y, _ = compare_with_torch(torch, layer, fn, x, dy, atol=1e-12)
        assert y.shape == (1, 2, 1, 1)


def test_global_avg_pool_matches_torch_mean(torch, rng):
    x = rng.standard_normal((3, 4, 5, 6))
    layer = GlobalAvgPool2D()
    dy = rng.standard_normal((3, 4))
    compare_with_torch(torch, layer, lambda t: t.mean(dim=(2, 3)), x, dy, atol=1e-12)
    assert layer.output_shape((3, 4, 5, 6)) == (3, 4)
    assert gradcheck(layer, x[:1, :2]).ok(1e-7)


# ---- the three implementations agree ---------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_fast_path_equals_general_path_and_loops(rng, shape, dtype):
    for x in _inputs(rng, shape):
        x = x.astype(dtype)
        y_fast, masks = F.max_pool2d_2x2(x)
        y_gen, arg_gen = F.max_pool2d(x, 2)
        y_ref, where = R.max_pool2d_loops(x, 2)
        assert y_fast.dtype == y_gen.dtype == dtype
        np.testing.assert_array_equal(y_fast, y_gen)
        np.testing.assert_array_equal(y_fast, y_ref)
        dy = rng.standard_normal(y_fast.shape).astype(dtype)
        dx = F.max_pool2d_backward(dy, arg_gen, x.shape, 2)
        assert dx.dtype == dtype and dx.shape == x.shape
        np.testing.assert_array_equal(dx, R.max_pool2d_backward_loops(dy, where, x.shape))
        np.testing.assert_array_equal(F.max_pool2d_2x2_backward(dy, masks, x.shape), dx)


def test_general_paths_equal_loop_reference(rng):
    x = np.maximum(rng.standard_normal((2, 2, 7, 6)), 0.0)
    for args in [
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"kernel_size": (2, 3), "stride": 1, "padding": (1, 1), "ceil_mode": False},
        {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True},
    ]:
        y, arg = F.max_pool2d(x, **args)
        y_ref, where = R.max_pool2d_loops(x, **args)
        np.testing.assert_array_equal(y, y_ref)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_allclose(
            F.max_pool2d_backward(dy, arg, x.shape, **args),
            R.max_pool2d_backward_loops(dy, where, x.shape),
            atol=1e-12,
        )
        for include in (True, False):
            np.testing.assert_allclose(
                F.avg_pool2d(x, **args, count_include_pad=include),
                R.avg_pool2d_loops(x, **args, count_include_pad=include),
                atol=1e-12,
            )
            np.testing.assert_allclose(
                F.avg_pool2d_backward(dy, x.shape, **args, count_include_pad=include),
                R.avg_pool2d_backward_loops(dy, x.shape, **args, count_include_pad=include),
                atol=1e-12,
            )


def test_hand_computed_tie_goes_to_first_max():
    x = np.array([[[[1.0, 5.0, 0.0, 0.0], [5.0, 2.0, 0.0, 0.0]]]])
    layer = MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(x), [[[[5.0, 0.0]]]])
    dx = layer.backward(np.array([[[[1.0, 2.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_overlapping_windows_accumulate():
    x = np.array([[[[0.0, 9.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    layer = MaxPool2D(2, stride=1)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 0, 1] == 2.0  # the 9 wins two windows
    assert dx.sum() == 4.0


def test_float32_in_float32_out(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    for layer in [MaxPool2D(3, stride=2, padding=1), AvgPool2D(2, ceil_mode=True), GlobalAvgPool2D()]:
        y = layer.forward(x)
        assert y.dtype == np.float32
        assert layer.backward(np.ones_like(y)).dtype == np.float32


# ---- finite differences ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer",
    [
        AvgPool2D(3, stride=2, padding=1, ceil_mode=True),
        AvgPool2D((2, 3), stride=1, padding=1, count_include_pad=False),
        MaxPool2D(3, stride=2, padding=1, ceil_mode=True),
        MaxPool2D(2, stride=1),
        MaxPool2D(2),
    ],
    ids=repr,
)
def test_gradcheck(rng, layer):
    x = rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) * 0.1  # distinct values: no ties
    assert gradcheck(layer, x).ok(1e-7)


# ---- shapes, formulas, errors, repr, config --------------------------------------------------
def test_formula_and_output_shape():
    assert MaxPool2D(2).formula((8, 1, 28, 28)) == "floor((28 - 2 + 2*0) / 2) + 1 = 14"
    assert AvgPool2D(3, stride=2, padding=1, ceil_mode=True).formula((1, 1, 7, 7)) == (
        "ceil((7 - 3 + 2*1) / 2) + 1 = 4"
    )
    assert MaxPool2D(2).formula((1, 1, 28, 14)) == (
        "H: floor((28 - 2 + 2*0) / 2) + 1 = 14, W: floor((14 - 2 + 2*0) / 2) + 1 = 7"
    )
    assert "- 1 (the last window would start in the right padding) = 3" in MaxPool2D(
        2, padding=1, ceil_mode=True
    ).formula((1, 1, 5, 5))
    assert MaxPool2D(2, padding=1, ceil_mode=True).output_shape((1, 1, 5, 5)) == (1, 1, 3, 3)
    assert MaxPool2D((2, 3), stride=(1, 2)).output_shape((4, 3, 10, 11)) == (4, 3, 9, 5)


def test_too_small_input_error():
    with pytest.raises(
        ShapeError,
        match=r"MaxPool2D: input of shape \(1, 1, 2, 2\) is too small.*"
        r"floor\(\(2 - 3 \+ 2\*0\) / 3\) \+ 1 = 0",
    ):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(
        ShapeError, match=r"AvgPool2D: input must have shape \(N, C, H, W\). Received: shape \(2, 3\)"
    ):
        AvgPool2D(2).forward(np.zeros((2, 3)))
    with pytest.raises(
        ShapeError, match=r"pool2d: input of shape \(1, 1, 3, 1\) is too small.*the output would be 2x0"
    ):
        F.avg_pool2d(np.zeros((1, 1, 3, 1)), 2, stride=1)
    with pytest.raises(ShapeError, match=r"GlobalAvgPool2D: input must have shape \(N, C, H, W\)"):
        GlobalAvgPool2D().forward(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: MaxPool2D(0),
            r"MaxPool2D: argument `kernel_size` must be a positive int or a pair of them. "
            r"Received: kernel_size=0",
        ),
        (
            lambda: MaxPool2D(2, stride=(1, 0)),
            r"argument `stride` must be a positive int.*Received: stride=\(1, 0\)",
        ),
        (lambda: AvgPool2D(2.5), r"AvgPool2D: argument `kernel_size`.*Received: kernel_size=2.5"),
        (
            lambda: AvgPool2D(2, padding=-1),
            r"`padding` must be an int >= 0, a pair of them, or four \(top, left, bottom, right\) as "
            r"ONNX's pads. Received: padding=-1",
        ),
        (
            lambda: MaxPool2D(3, padding=2),
            r"MaxPool2D: argument `padding` must be at most half of kernel_size=3 "
            r"\(as in PyTorch\). Received: padding=2",
        ),
        (lambda: AvgPool2D((3, 1), padding=1), r"at most half of kernel_size=\(3, 1\).*Received: padding=1"),
        (lambda: MaxPool2D(2, ceil_mode="yes"), r"`ceil_mode` must be True or False"),
        (lambda: AvgPool2D(2, count_include_pad=1), r"`count_include_pad` must be True or False"),
        (lambda: MaxPool2D(True), r"`kernel_size` must be a positive int"),
    ],
)
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_backward_errors():
    for layer in (MaxPool2D(2), AvgPool2D(2), GlobalAvgPool2D()):
        with pytest.raises(CnnlabError, match=r"backward\(\) called before forward\(\)"):
            layer.backward(np.zeros((1, 1, 1, 1)))
        layer.forward(np.zeros((1, 1, 4, 4)))
        with pytest.raises(ShapeError, match=r"dy must have shape"):
            layer.backward(np.zeros((1, 1, 3, 3)))


def test_repr_and_config_rebuild(rng):
    assert repr(MaxPool2D(2)) == "MaxPool2D(2)"
    assert repr(AvgPool2D(3, stride=2, padding=1)) == "AvgPool2D(3, stride=2, padding=1)"
    assert repr(AvgPool2D(2, count_include_pad=False)) == "AvgPool2D(2, count_include_pad=False)"
    assert repr(GlobalAvgPool2D()) == "GlobalAvgPool2D()"
    x = rng.standard_normal((2, 2, 7, 7))
    for layer in (
        MaxPool2D((2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True),
        AvgPool2D(3, 2, 1, True, False),
    ):
        again = type(layer)(**layer.get_config())
        np.testing.assert_array_equal(again.forward(x), layer.forward(x))
        via_json = from_config(to_config(layer))  # tuples come back as lists
        np.testing.assert_array_equal(via_json.forward(x), layer.forward(x))
    assert isinstance(from_config(to_config(GlobalAvgPool2D())), GlobalAvgPool2D)
