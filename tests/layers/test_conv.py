"""Conv2D: gradients, PyTorch parity, the loop reference, workspaces, the lecture's cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional import conv as fconv
from cnnlab.functional.reference_conv import conv2d_backward_loop, conv2d_forward_loop
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.conv import Conv2D
from torch_compare import compare_with_torch


def run_layer(layer: Conv2D, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, ...]:
    """forward + backward; returns copies of (y, dx, dW, db)."""
    y = layer.forward(x).copy()
    dx = layer.backward(dy)
    db = layer.grads.get("bias", np.zeros(0))
    return y, None if dx is None else dx.copy(), layer.grads["weight"].copy(), db.copy()


def torch_conv(torch, layer: Conv2D, x_shape: tuple[int, ...]) -> Any:
    """The layer as a PyTorch function of (x, weight[, bias]); asymmetric "same" pads through F.pad."""
    F = torch.nn.functional
    top, bottom, left, right = layer._pads(x_shape[2], x_shape[3])

    def fn(xt: Any, wt: Any, bt: Any = None) -> Any:
        xp = F.pad(xt, (left, right, top, bottom))
        return F.conv2d(xp, wt, bt, stride=layer._stride, dilation=layer._dilation)

    return fn


def conv_params(layer: Conv2D) -> tuple[str, ...]:
    return ("weight", "bias") if layer.bias else ("weight",)


# (N, C_in, C_out, H, W, kernel_size, stride, padding, dilation)
GRID = [
    (2, 3, 4, 7, 7, 3, 1, 1, 1),
    (2, 3, 4, 7, 7, 3, 2, 1, 1),  # (7 - 3 + 2) / 2 divides
    (2, 3, 4, 8, 8, 3, 2, 1, 1),  # (8 - 3 + 2) / 2 does not divide
    (1, 2, 3, 9, 10, 5, 3, 2, 1),  # batch 1, stride 3, rectangular input
    (2, 2, 3, 9, 8, (2, 3), (1, 2), (0, 1), 1),  # non-square kernel, pair stride/padding
    (2, 2, 3, 8, 9, (1, 4), 2, (2, 0), 2),
    (2, 3, 2, 6, 6, 1, 1, 0, 1),  # 1x1 kernel
    (2, 3, 2, 7, 6, 1, 2, 0, 1),  # 1x1 kernel, stride 2
    (2, 3, 4, 7, 7, 3, 1, 0, 2),  # dilation 2
    (2, 2, 3, 9, 7, (3, 2), 2, 1, (2, 1)),
    (2, 2, 3, 5, 5, 5, 1, 0, 1),  # 1x1 spatial output
    (1, 2, 3, 3, 3, 3, 3, 0, 1),  # 1x1 spatial output, stride 3
    (2, 2, 3, 5, 5, 3, 1, "valid", 1),
    (2, 2, 3, 7, 6, 3, 3, "valid", 2),
    (2, 2, 3, 7, 7, 3, 1, "same", 1),
    (2, 2, 3, 7, 8, 3, 2, "same", 1),  # odd total padding: extra row at the bottom
    (2, 2, 3, 8, 7, 4, 2, "same", 1),  # even kernel
    (2, 2, 3, 9, 10, 3, 3, "same", 2),
    (1, 2, 3, 6, 5, (2, 5), (3, 1), "same", (1, 2)),
    (2, 2, 3, 1, 1, 3, 2, "same", 1),  # 1x1 input and output
    (2, 3, 2, 4, 4, 4, 2, 1, 1),
    (8, 8, 4, 16, 16, 3, 1, 1, 1),  # big enough for the multi-threaded copies and adds
    # C_out <= C_in at stride 1: dx comes from a second convolution (dx_conv_pads)
    (2, 4, 4, 7, 7, 3, 1, 1, 1),
    (2, 4, 3, 8, 7, 4, 1, "same", 1),  # asymmetric pads (even kernel)
    (2, 3, 3, 9, 8, (3, 2), 1, (1, 0), (2, 1)),  # non-square kernel, pair dilation
    (2, 3, 2, 6, 6, 3, 1, 3, 1),  # pad > kernel - 1: col2im instead
]


@pytest.mark.parametrize("case", GRID, ids=[str(c[5:]) for c in GRID])
def test_matches_pytorch(torch, case) -> None:
    N, C_in, C_out, H, W, k, s, p, d = case
    rng = np.random.default_rng(7)
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, rng=0).astype(np.float64)
    x = rng.standard_normal((N, C_in, H, W))
    y_shape = layer.output_shape(x.shape)
    dy = rng.standard_normal(y_shape)
    y, dx = compare_with_torch(torch, layer, torch_conv(torch, layer, x.shape), x, dy, conv_params(layer))
    assert y.shape == y_shape and dx is not None


def test_matches_pytorch_without_bias(torch) -> None:
    layer = Conv2D(2, 3, 3, stride=2, padding="same", bias=False, rng=0).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 7))
    dy = np.random.default_rng(1).standard_normal(layer.output_shape(x.shape))
    compare_with_torch(torch, layer, torch_conv(torch, layer, x.shape), x, dy, conv_params(layer))
    assert "bias" not in layer.params and "bias" not in layer.grads


@pytest.mark.parametrize(
    "k, s, p, d", [(3, 1, 1, 1), (3, 2, 0, 1), ((2, 3), (2, 1), "same", (1, 2)), (2, 1, "same", 2)]
)
def test_gradcheck(k, s, p, d) -> None:
    layer = Conv2D(2, 3, k, stride=s, padding=p, dilation=d, rng=0)
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 6))
    result = gradcheck(layer, x)
    assert result.ok(1e-6), str(result)


@pytest.mark.parametrize("case", GRID[:6] + GRID[14:19], ids=[str(c[5:]) for c in GRID[:6] + GRID[14:19]])
def test_fast_path_matches_loop_reference(case) -> None:
    N, C_in, C_out, H, W, k, s, p, d = case
    rng = np.random.default_rng(11)
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, rng=1).astype(np.float64)
    x = rng.standard_normal((N, C_in, H, W))
    dy = rng.standard_normal(layer.output_shape(x.shape))
    y, dx, dW, db = run_layer(layer, x, dy)
    pads = layer._pads(H, W)
    w, b = layer.params["weight"], layer.params["bias"]
    np.testing.assert_allclose(
        y, conv2d_forward_loop(x, w, b, pads, layer._stride, layer._dilation), atol=1e-12
    )
    ref = conv2d_backward_loop(dy, x, w, pads, layer._stride, layer._dilation)
    for a, r in zip((dx, dW, db), ref, strict=True):
        np.testing.assert_allclose(a, r, atol=1e-12)


@pytest.fixture
def tiny_budget():
    old = fconv.set_workspace_budget(4000)  # 1-2 samples per chunk (less than one is refused)
    yield
    fconv.set_workspace_budget(old)


@pytest.mark.parametrize("padding", [0, 1, "same"])
@pytest.mark.parametrize("stride, C_out", [(2, 4), (1, 3)])  # (1, 3): dx by a second convolution
def test_chunked_equals_unchunked(tiny_budget, padding, stride, C_out) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 3, 6, 5))
    layer = Conv2D(3, C_out, 3, stride=stride, padding=padding, rng=0).astype(np.float64)
    dy = rng.standard_normal(layer.output_shape(x.shape))
    fconv.set_workspace_budget(4000 if stride == 2 else 9000)
    chunked = run_layer(layer, x, dy)
    assert fconv.chunk_size(3, (3, 3), (8, 7), dy.shape[2:], 8) < 7  # the budget really splits the batch
    fconv.set_workspace_budget(2**30)
    whole = run_layer(Conv2D(3, C_out, 3, stride=stride, padding=padding, rng=0).astype(np.float64), x, dy)
    for a, b in zip(chunked, whole, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


def test_workspace_reuse_across_input_sizes() -> None:
    # One layer, inputs of changing batch and spatial size; "same" pads change with the
    # size while the padded shape stays 7x7 (H=5: pads 1/1, H=6: pads 0/1): a reused
    # buffer with a stale border would be caught here.
    layer = Conv2D(2, 3, 3, stride=2, padding="same", rng=0).astype(np.float64)
    rng = np.random.default_rng(9)
    for shape in [(3, 2, 5, 5), (3, 2, 6, 6), (1, 2, 5, 5), (4, 2, 9, 4), (3, 2, 6, 6), (3, 2, 5, 5)]:
        x = 10 + rng.standard_normal(shape)
        dy = rng.standard_normal(layer.output_shape(shape))
        fresh = Conv2D(2, 3, 3, stride=2, padding="same", rng=0).astype(np.float64)
        for a, b in zip(run_layer(layer, x, dy), run_layer(fresh, x, dy), strict=True):
            np.testing.assert_array_equal(a, b)


def test_backward_recomputes_columns_after_another_forward() -> None:
    layer = Conv2D(2, 2, 3, padding=1, rng=0).astype(np.float64)
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal((2, 2, 5, 5))
    expected = run_layer(layer, x2, dy)
    layer.forward(x2)
    other = Conv2D(2, 2, 3, padding=1, rng=0).astype(np.float64)
    other._workspace = layer._workspace  # another user of the same buffers overwrites the columns
    other.forward(x1)
    for a, b in zip(
        expected[1:], (layer.backward(dy), layer.grads["weight"], layer.grads["bias"]), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_needs_input_grad_false_keeps_weight_grads() -> None:
    rng = np.random.default_rng(4)
    x, dy = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((2, 4, 3, 3))
    full = run_layer(Conv2D(3, 4, 3, stride=2, padding=1, rng=0), x, dy)
    first = Conv2D(3, 4, 3, stride=2, padding=1, rng=0)
    first.needs_input_grad = False
    _, dx, dW, db = run_layer(first, x, dy)
    assert dx is None
    np.testing.assert_array_equal(dW, full[2])
    np.testing.assert_array_equal(db, full[3])


def test_float32_by_default_and_init_bound() -> None:
    layer = Conv2D(4, 8, 3, rng=0)
    w, b = layer.params["weight"], layer.params["bias"]
    assert w.shape == (8, 4, 3, 3) and b.shape == (8,)
    assert w.dtype == b.dtype == np.float32
    bound = 1 / np.sqrt(4 * 3 * 3)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound and np.abs(w).max() > 0.9 * bound
    y = layer.forward(np.ones((1, 4, 5, 5), np.float64))
    assert y.dtype == np.float32
    dx = layer.backward(np.ones(y.shape, np.float32))
    assert dx.dtype == layer.grads["weight"].dtype == layer.grads["bias"].dtype == np.float32
    np.testing.assert_array_equal(Conv2D(4, 8, 3, rng=0).params["weight"], w)  # same seed, same weights


# ---- the lecture's tiny cases, by hand --------------------------------------------------
def ones_layer(stride: int) -> Conv2D:
    layer = Conv2D(1, 1, 3, stride=stride, padding=1, rng=0).astype(np.float64)
    layer.params["weight"][:] = 1.0
    layer.params["bias"][:] = 0.0
    return layer


def test_lecture_5x5_stride1_padding1_all_ones() -> None:
    layer = ones_layer(stride=1)
    y = layer.forward(np.ones((1, 1, 5, 5)))
    # Each output counts the real (non-padding) pixels under the 3x3 filter:
    # 4 at the corners, 6 along the edges, 9 inside.
    expected = np.array(
        [[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]], dtype=float
    )
    np.testing.assert_array_equal(y[0, 0], expected)
    dx = layer.backward(np.ones((1, 1, 5, 5)))
    np.testing.assert_array_equal(dx[0, 0], expected)  # each pixel is covered by as many windows
    # Tap (i, j) of the filter meets a real pixel at 4*4 (corner), 4*5 (edge), 5*5 outputs.
    np.testing.assert_array_equal(layer.grads["weight"][0, 0], [[16, 20, 16], [20, 25, 20], [16, 20, 16]])
    np.testing.assert_array_equal(layer.grads["bias"], [25.0])


def test_lecture_5x5_stride2_padding1() -> None:
    layer = ones_layer(stride=2)
    np.testing.assert_array_equal(
        layer.forward(np.ones((1, 1, 5, 5)))[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    )
    layer.params["bias"][:] = 0.5
    x = np.arange(25.0).reshape(1, 1, 5, 5)  # rows 0..4, 5..9, ...
    # Top-left window covers x[0:2, 0:2] = 0+1+5+6 = 12; the centre covers x[1:4, 1:4] = 108.
    expected = np.array([[12, 27, 24], [63, 108, 81], [72, 117, 84]]) + 0.5
    np.testing.assert_array_equal(layer.forward(x)[0, 0], expected)
    assert layer.formula(x.shape) == "floor((5 - 3 + 2*1) / 2) + 1 = 3"


# ---- sizes, formulas, errors ------------------------------------------------------------
def test_formula_text() -> None:
    assert Conv2D(1, 32, 3, padding=1).formula((1, 1, 28, 28)) == "floor((28 - 3 + 2*1) / 1) + 1 = 28"
    assert Conv2D(1, 2, 3, dilation=2).formula((1, 1, 28, 28)) == (
        "floor((28 - 5 + 2*0) / 1) + 1 = 24 (effective kernel 2*(3-1)+1 = 5)"
    )
    assert Conv2D(1, 2, 3, stride=2, padding="same").formula((1, 1, 28, 28)) == "same: ceil(28 / 2) = 14"
    assert Conv2D(1, 2, (3, 1), stride=2).formula((1, 1, 28, 14)) == (
        "H: floor((28 - 3 + 2*0) / 2) + 1 = 13, W: floor((14 - 1 + 2*0) / 2) + 1 = 7"
    )


def test_output_shape_and_same_padding_split() -> None:
    layer = Conv2D(3, 8, 3, stride=2, padding="same")
    assert layer.output_shape((5, 3, 7, 8)) == (5, 8, 4, 4)
    assert layer._pads(7, 8) == (1, 1, 0, 1)  # odd total padding: the extra one at the bottom/right
    assert Conv2D(3, 8, 5, stride=3, padding="valid").output_shape((1, 3, 11, 5)) == (1, 8, 3, 1)


def test_kernel_larger_than_padded_input() -> None:
    layer = Conv2D(1, 1, 3, dilation=3)
    msg = r"Conv2D: kernel \(effective size 7\) is larger than the padded input: H \+ 2P = 5 \+ 2\*0 = 5 < 7"
    with pytest.raises(ShapeError, match=msg):
        layer.output_shape((1, 1, 5, 9))
    with pytest.raises(ShapeError, match=r"W \+ 2P = 2 \+ 2\*1 = 4 < 5"):
        Conv2D(1, 1, 5, padding=1).forward(np.zeros((1, 1, 9, 2), np.float32))


def test_wrong_rank_and_channels() -> None:
    layer = Conv2D(3, 4, 3)
    with pytest.raises(
        ShapeError, match=r"Conv2D: input must have shape \(N, C, H, W\). Received: shape \(3, 8, 8\)"
    ):
        layer.forward(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(
        ShapeError, match=r"must have 3 channels.*in_channels=3.*Received: shape \(1, 1, 8, 8\)"
    ):
        layer.output_shape((1, 1, 8, 8))


def test_backward_before_forward() -> None:
    with pytest.raises(CnnlabError, match="backward\\(\\) called before forward\\(\\)"):
        Conv2D(1, 1, 3).backward(np.zeros((1, 1, 3, 3), np.float32))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 0}, "argument `stride` must be a positive int or a pair of them. Received: stride=0"),
        ({"stride": (1, -2)}, r"Received: stride=\(1, -2\)"),
        (
            {"padding": -1},
            "argument `padding` must be an int >= 0, a pair of them, or one of 'valid', 'same'",
        ),
        ({"padding": "full"}, r"one of 'valid', 'same'. Received: padding='full'"),
        (
            {"kernel_size": 0},
            "argument `kernel_size` must be a positive int or a pair of them. Received: kernel_size=0",
        ),
        ({"kernel_size": (3, 3, 3)}, r"Received: kernel_size=\(3, 3, 3\)"),
        (
            {"dilation": 0},
            "argument `dilation` must be a positive int or a pair of them. Received: dilation=0",
        ),
        ({"in_channels": 0}, "argument `in_channels` must be a positive int. Received: in_channels=0"),
        ({"out_channels": -4}, "argument `out_channels` must be a positive int. Received: out_channels=-4"),
    ],
)
def test_argument_errors(kwargs, message) -> None:
    args = {"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        Conv2D(**args)
    assert str(info.value).startswith("Conv2D: argument `")


def test_repr_and_config_rebuild() -> None:
    assert repr(Conv2D(1, 32, kernel_size=3, padding=1)) == "Conv2D(1, 32, kernel_size=3, padding=1)"
    layer = Conv2D(3, 8, (3, 5), stride=2, padding="same", dilation=(1, 2), bias=False, rng=0)
    assert repr(layer) == (
        "Conv2D(3, 8, kernel_size=(3, 5), stride=2, padding='same', dilation=(1, 2), bias=False)"
    )
    for rebuilt in (Conv2D(**layer.get_config()), from_config(to_config(layer))):
        assert repr(rebuilt) == repr(layer)
        assert rebuilt.output_shape((2, 3, 9, 9)) == layer.output_shape((2, 3, 9, 9))
        assert rebuilt.params["weight"].shape == layer.params["weight"].shape
    assert "rng" not in layer.get_config()
