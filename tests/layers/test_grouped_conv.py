"""Conv2D(groups=...): grouped and depthwise convolution against PyTorch, gradchecks, hand cases, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.functional.grouped_conv import depthwise_conv2d_forward, grouped_conv2d_forward
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.registry import config_parameter_count
from torch_compare import compare_with_torch


def torch_conv(torch: Any, layer: Conv2D, x_shape: tuple[int, ...]) -> Any:
    """The layer as a PyTorch function of (x, weight[, bias]); "same" pads through F.pad."""
    F = torch.nn.functional
    top, bottom, left, right = layer._pads(x_shape[2], x_shape[3])

    def fn(xt: Any, wt: Any, bt: Any = None) -> Any:
        xp = F.pad(xt, (left, right, top, bottom))
        return F.conv2d(xp, wt, bt, stride=layer._stride, dilation=layer._dilation, groups=layer.groups)

    return fn


# (N, C_in, C_out, H, W, kernel_size, stride, padding, dilation, groups)
GRID = [
    (2, 4, 6, 7, 7, 3, 1, 1, 1, 2),  # AlexNet-style halves
    (2, 6, 6, 8, 7, 3, 2, 1, 1, 3),  # stride 2, sizes that do not divide
    (2, 6, 9, 9, 10, (3, 2), (2, 1), (1, 0), (2, 1), 3),  # rectangular everything
    (2, 8, 8, 6, 6, 1, 1, 0, 1, 4),  # grouped 1x1 (ShuffleNet's pointwise groups)
    (2, 8, 4, 7, 6, 1, 2, 0, 1, 2),  # grouped 1x1, stride 2
    (2, 6, 6, 7, 8, 4, 2, "same", 1, 2),  # "same", even kernel, asymmetric pads
    (2, 4, 4, 7, 7, 3, 1, 1, 1, 4),  # depthwise
    (2, 5, 5, 9, 8, 3, 2, 1, 1, 5),  # depthwise, stride 2 (MobileNet's downsampling)
    (2, 3, 6, 7, 7, 3, 1, 1, 1, 3),  # depthwise, multiplier 2
    (1, 3, 9, 8, 9, (3, 5), (1, 2), (2, 1), (2, 1), 3),  # depthwise, multiplier 3, dilation
    (2, 4, 4, 6, 6, 5, 1, "same", 1, 4),  # depthwise 5x5 "same"
    (2, 4, 4, 7, 6, 3, 3, "valid", 1, 4),  # depthwise, no padding
    (2, 4, 8, 5, 5, 1, 1, 0, 1, 4),  # depthwise 1x1
    (2, 2, 4, 3, 3, 3, 1, 3, 1, 2),  # pad > kernel - 1
    (4, 32, 32, 16, 16, 3, 1, 1, 1, 32),  # big enough for several threads and channel blocks
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", GRID, ids=[str(c[5:]) for c in GRID])
def test_matches_pytorch(torch, case, bias) -> None:
    N, C_in, C_out, H, W, k, s, p, d, g = case
    rng = np.random.default_rng(7)
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias, rng=0)
    layer.astype(np.float64)
    assert layer.params["weight"].shape[1] == C_in // g
    x = rng.standard_normal((N, C_in, H, W))
    dy = rng.standard_normal(layer.output_shape(x.shape))
    names = ("weight", "bias") if bias else ("weight",)
    compare_with_torch(
        torch, layer, torch_conv(torch, layer, x.shape), x, dy, names, atol=1e-12, where=str(case)
    )


@pytest.mark.parametrize("case", [GRID[0], GRID[3], GRID[6], GRID[9]], ids=str)
def test_without_input_gradient(case) -> None:
    N, C_in, C_out, H, W, k, s, p, d, g = case
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, groups=g, rng=0).astype(np.float64)
    x = np.random.default_rng(1).standard_normal((N, C_in, H, W))
    dy = np.ones(layer.output_shape(x.shape))
    layer.forward(x)
    dx = layer.backward(dy)
    dW = layer.grads["weight"].copy()
    layer.needs_input_grad = False
    layer.forward(x)
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.grads["weight"], dW, rtol=1e-13, atol=1e-13)
    assert dx is not None


@pytest.mark.parametrize("case", [GRID[1], GRID[5], GRID[8], GRID[9]], ids=str)
def test_gradcheck(case) -> None:
    _, C_in, C_out, H, W, k, s, p, d, g = case
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, groups=g, rng=0)
    x = np.random.default_rng(3).standard_normal((1, C_in, min(H, 6), min(W, 6)))
    assert gradcheck(layer, x).ok(1e-7)


def test_float32_matches_float64() -> None:
    rng = np.random.default_rng(0)
    for g, C_out in ((2, 6), (4, 8)):
        layer = Conv2D(4, C_out, 3, padding=1, groups=g, rng=0)
        x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
        y32 = layer.forward(x)
        assert y32.dtype == np.float32 and layer.backward(np.ones_like(y32)).dtype == np.float32
        y64 = layer.astype(np.float64).forward(x.astype(np.float64))
        np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)


def test_hand_cases() -> None:
    # Depthwise: channel 0 is summed over each 2x2 window, channel 1 negated and summed.
    x = np.arange(18.0).reshape(1, 2, 3, 3)
    layer = Conv2D(2, 2, 2, groups=2, bias=False)
    layer.params["weight"] = np.stack([np.ones((1, 2, 2)), -np.ones((1, 2, 2))])
    y = layer.forward(x)
    assert y[0, 0].tolist() == [[8.0, 12.0], [20.0, 24.0]]  # 0+1+3+4, 1+2+4+5, ...
    assert y[0, 1].tolist() == [[-44.0, -48.0], [-56.0, -60.0]]  # -(9+10+12+13), ...
    dx = layer.backward(np.ones((1, 2, 2, 2)))
    assert dx[0, 0].tolist() == [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]  # windows per pixel
    assert (dx[0, 1] == -dx[0, 0]).all()
    # Two groups of two channels, 1x1: filter 0 adds channels 0 and 1, filter 1 takes 3 times channel 2.
    grouped = Conv2D(4, 2, 1, groups=2, bias=False)
    grouped.params["weight"] = np.array([[1.0, 1.0], [3.0, 0.0]]).reshape(2, 2, 1, 1)
    x = np.array([1.0, 2.0, 5.0, 7.0]).reshape(1, 4, 1, 1)
    assert grouped.forward(x).ravel().tolist() == [3.0, 15.0]
    y, _ = grouped_conv2d_forward(x, grouped.params["weight"], None, groups=2)
    assert y.ravel().tolist() == [3.0, 15.0]
    w = np.ones((2, 1, 1, 1))
    assert depthwise_conv2d_forward(x[:, :2], w, np.array([0.5, -0.5])).ravel().tolist() == [1.5, 1.5]


def test_costs_config_and_repr() -> None:
    layer = Conv2D(32, 64, 3, padding=1, groups=32, bias=False)
    assert layer.params["weight"].shape == (64, 1, 3, 3)
    assert repr(layer) == "Conv2D(32, 64, kernel_size=3, padding=1, groups=32, bias=False)"
    assert layer.flops((1, 32, 8, 8)) == 2 * 1 * 9 * 64 * 64  # C_in/groups = 1 input channel per filter
    config = to_config(layer)
    assert config["args"]["groups"] == 32
    assert config_parameter_count(config) == 64 * 9
    assert repr(from_config(config)) == repr(layer)
    assert "groups" not in to_config(Conv2D(3, 4, 3))["args"]  # saved files of ordinary convs unchanged
    assert config_parameter_count(to_config(Conv2D(4, 6, 3, groups=2))) == 6 * 2 * 9 + 6
    # PyTorch's init: fan_in = C_in/groups * KH * KW, so the bound is 1/sqrt(9) = 1/3 here
    assert np.abs(Conv2D(8, 8, 3, groups=8, rng=0).params["weight"]).max() <= 1 / 3


def test_errors() -> None:
    with pytest.raises(
        ValueError, match=r"Conv2D: argument `groups` must be a positive int. Received: groups=0"
    ):
        Conv2D(4, 4, 3, groups=0)
    with pytest.raises(
        ValueError,
        match=r"Conv2D: argument `groups` must divide in_channels=4 and out_channels=6. Received: groups=4",
    ):
        Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ShapeError, match=r"input must have 4 channels.*Received: shape \(1, 2, 5, 5\)"):
        Conv2D(4, 4, 3, groups=2).forward(np.zeros((1, 2, 5, 5)))


@pytest.mark.parametrize(
    "layer",
    [
        Conv2D(4, 6, 3, padding=1, groups=2, rng=0),
        Conv2D(4, 8, 3, stride=2, padding="same", groups=4, rng=0),  # Conv2dSame with groups
        Conv2D(6, 6, 3, padding="same", groups=6, bias=False, rng=0),
    ],
    ids=repr,
)
def test_to_torch_and_back_carry_groups(torch, layer) -> None:
    from cnnlab.interop.torch import from_torch, to_torch

    layer.astype(np.float64)
    module = to_torch(layer)
    assert module.groups == layer.groups
    x = np.random.default_rng(0).standard_normal((2, layer.in_channels, 7, 7))
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.tensor(x)).numpy(), layer.forward(x), rtol=0, atol=1e-12)
    back = from_torch(module)
    assert repr(back) == repr(layer)
    np.testing.assert_array_equal(back.params["weight"], layer.params["weight"])


def test_onnx_export_carries_groups_and_the_new_layers(torch, tmp_path) -> None:
    """A ShuffleNet/MobileNet-style block through torch.onnx and onnxruntime."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from cnnlab.interop.onnx import to_onnx
    from cnnlab.layers.activations_extra import Hardswish, LogSoftmax, ReLU6
    from cnnlab.layers.lrn import LocalResponseNorm
    from cnnlab.layers.pooling import GlobalAvgPool2D
    from cnnlab.layers.sequential import Sequential
    from cnnlab.layers.shuffle import ChannelShuffle

    model = Sequential(
        Conv2D(3, 6, 3, padding=1, rng=0),
        LocalResponseNorm(3, alpha=0.5, k=2.0),
        Conv2D(6, 12, 1, groups=3, rng=1),
        ReLU6(),
        ChannelShuffle(3),
        Conv2D(12, 12, 3, stride=2, padding=1, groups=12, rng=2),
        Hardswish(),
        GlobalAvgPool2D(),
        LogSoftmax(),
    ).eval()
    # dynamo: the TorchScript exporter has no aten::channel_shuffle
    path = to_onnx(model, tmp_path / "block.onnx", (3, 9, 9), dynamo=True)
    graph = onnx.load(str(path)).graph
    groups = sorted(a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group")
    assert groups == [1, 3, 12]
    assert {"HardSwish", "LogSoftmax"} <= {n.op_type for n in graph.node}  # LRN: decomposed by torch
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    (y,) = onnxruntime.InferenceSession(str(path)).run(None, {"input": x})
    np.testing.assert_allclose(y, model.forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [GRID[1], GRID[3], GRID[8], GRID[9], GRID[13]], ids=str)
def test_matches_the_loop_reference(case) -> None:
    """The readable loops (functional/reference_conv.py) read each filter's group only."""
    from cnnlab.functional.reference_conv import conv2d_backward_loop, conv2d_forward_loop

    N, C_in, C_out, H, W, k, s, p, d, g = case
    layer = Conv2D(C_in, C_out, k, stride=s, padding=p, dilation=d, groups=g, rng=0).astype(np.float64)
    x = np.random.default_rng(5).standard_normal((N, C_in, H, W))
    y = layer.forward(x)
    dy = np.random.default_rng(6).standard_normal(y.shape)
    dx = layer.backward(dy)
    pads = layer._pads(H, W)
    w, b = layer.params["weight"], layer.params["bias"]
    np.testing.assert_allclose(
        y, conv2d_forward_loop(x, w, b, pads, layer._stride, layer._dilation), atol=1e-12
    )
    dx_ref, dW_ref, db_ref = conv2d_backward_loop(dy, x, w, pads, layer._stride, layer._dilation)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], dW_ref, atol=1e-12)
    np.testing.assert_allclose(layer.grads["bias"], db_ref, atol=1e-12)
