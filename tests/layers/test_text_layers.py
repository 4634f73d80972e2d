"""The text layers (issue 27): Embedding, Conv1D, MaxPool1D, AvgPool1D, GlobalMaxPool1D.

Per layer: float64 parity with PyTorch (outputs and every gradient), gradcheck, a case
computed by hand, and the error messages.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional.conv1d import conv1d_backward_loop, conv1d_forward_loop
from cnnlab.functional.embedding import (
    embedding_backward,
    embedding_backward_add_at,
    embedding_backward_sort,
)
from cnnlab.gradcheck import gradcheck
from cnnlab.interop.torch_modules import torch_modules
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.pooling1d import AvgPool1D, GlobalMaxPool1D, MaxPool1D
from cnnlab.layers.sequential import Sequential
from torch_compare import compare_with_torch


def rebuilt(layer: Any) -> Any:
    """The layer rebuilt from its JSON-ready config."""
    return from_config(to_config(layer))


# ---- Embedding ------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
def test_embedding_matches_pytorch(torch, padding_idx) -> None:
    rng = np.random.default_rng(0)
    V, D = 11, 5
    layer = Embedding(V, D, padding_idx=padding_idx, rng=1).astype(np.float64)
    idx = rng.integers(0, V, (4, 9))
    idx[0, :4] = 3  # a repeated token: its gradient is a sum
    idx[1, -3:] = V - 1
    dy = rng.standard_normal((4, D, 9))
    y = layer.forward(idx)
    assert layer.backward(dy) is None  # integer ids have no gradient
    module = torch.nn.Embedding(V, D, padding_idx=padding_idx).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(layer.params["weight"]))
    yt = module(torch.tensor(idx)).transpose(1, 2)  # PyTorch's (N, L, D) as channels-first
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], module.weight.grad.numpy(), rtol=0, atol=1e-12)
    if padding_idx is not None:
        assert not layer.grads["weight"][padding_idx].any()
        # PyTorch also starts the padding row at zeros; cnnlab does the same.
        assert not Embedding(V, D, padding_idx=padding_idx, rng=5).params["weight"][padding_idx].any()


class _EmbeddingOfWeight:
    """Embedding as a function of a dummy float input, for gradcheck (ids cannot be nudged)."""

    def __init__(self, layer: Embedding, indices: np.ndarray) -> None:
        self.layer, self.indices = layer, indices
        self.params, self.grads = layer.params, layer.grads

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.layer.forward(self.indices)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        self.layer.backward(dy)
        return np.zeros(1)


def test_embedding_gradcheck() -> None:
    layer = Embedding(6, 3, rng=0).astype(np.float64)
    indices = np.array([[1, 2, 2, 5], [0, 1, 1, 1]])
    result = gradcheck(_EmbeddingOfWeight(layer, indices), np.zeros(1))
    assert result.ok(1e-7), str(result)
    assert result.max_abs["weight"] < 1e-7
    # With padding_idx=2 the math (gradcheck's) still has a row-2 gradient; the layer drops
    # just that row, as PyTorch does: the rest is the same gradient.
    dy = np.random.default_rng(0).standard_normal((2, 3, 4))
    layer.forward(indices)
    layer.backward(dy)
    padded = Embedding(6, 3, padding_idx=2, rng=0).astype(np.float64)
    padded.forward(indices)
    padded.backward(dy)
    assert layer.grads["weight"][2].any() and not padded.grads["weight"][2].any()
    rows = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(padded.grads["weight"][rows], layer.grads["weight"][rows])


def test_embedding_by_hand() -> None:
    layer = Embedding(4, 2, padding_idx=0, rng=0).astype(np.float64)
    layer.params["weight"][:] = [[0, 0], [1, 10], [2, 20], [3, 30]]
    y = layer.forward(np.array([[1, 3, 3, 0]]))  # (N=1, L=4)
    np.testing.assert_array_equal(y[0], [[1, 3, 3, 0], [10, 30, 30, 0]])  # (D=2, L=4): channels-first
    layer.backward(np.array([[[1.0, 2.0, 4.0, 8.0], [0.5, 0.25, 0.125, 9.0]]]))
    # Token 3 occurs twice: 2 + 4 and 0.25 + 0.125; token 0 (padding) gets nothing; token 2 is absent.
    np.testing.assert_array_equal(layer.grads["weight"], [[0, 0], [1.0, 0.5], [0, 0], [6.0, 0.375]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_backward_kernels_agree(dtype) -> None:
    rng = np.random.default_rng(3)
    V = 50
    idx = np.minimum(rng.zipf(1.5, (6, 40)) - 1, V - 1)
    dy = rng.standard_normal((6, 7, 40)).astype(dtype)
    ref = embedding_backward_add_at(dy, idx, V, 4)
    for kernel in (embedding_backward, embedding_backward_sort):
        got = kernel(dy, idx, V, 4)
        assert got.dtype == dtype and got.shape == (V, 7) and got.flags.c_contiguous
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_embedding_then_conv1d_without_transpose() -> None:
    model = Sequential(Embedding(20, 6, padding_idx=0, rng=0), Conv1D(6, 4, 3, padding="same", rng=1))
    idx = np.array([[3, 4, 5, 0, 0], [7, 7, 1, 2, 0]])
    y = model.forward(idx)
    assert y.shape == (2, 4, 5) == model.output_shape(idx.shape)
    assert model.backward(np.ones_like(y)) is None
    assert model.layers[0].grads["weight"].shape == (20, 6)


@pytest.mark.parametrize(
    "indices, error, message",
    [
        (
            np.array([[1, 2], [10, 0]]),
            IndexError,
            r"Embedding: token ids must be in \[0, 9\] \(num_embeddings=10\). Received: 10 at position "
            r"\(1, 0\) of input shape \(2, 2\)",
        ),
        (np.array([[1, -1]]), IndexError, r"\[0, 9\].*Received: -1 at position \(0, 1\)"),
        (np.array([[1.0, 2.0]]), TypeError, r"integer token ids \(an int dtype\). Received: dtype float64"),
        (
            np.array([1, 2]),
            ShapeError,
            r"Embedding: input must have shape \(N, L\) \(token ids\). Received: shape \(2,\)",
        ),
    ],
)
def test_embedding_input_errors(indices, error, message) -> None:
    with pytest.raises(error, match=message):
        Embedding(10, 3).forward(indices)


def test_embedding_argument_and_state_errors() -> None:
    with pytest.raises(
        ValueError, match=r"Embedding: argument `padding_idx` must be None or an int in \[-5, 4\]"
    ):
        Embedding(5, 2, padding_idx=5)
    with pytest.raises(
        ValueError, match=r"argument `num_embeddings` must be a positive int. Received: num_embeddings=0"
    ):
        Embedding(0, 2)
    with pytest.raises(
        ValueError, match=r"argument `embedding_dim` must be a positive int. Received: embedding_dim=2.5"
    ):
        Embedding(4, 2.5)  # type: ignore[arg-type]
    layer = Embedding(5, 2)
    with pytest.raises(CnnlabError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((1, 2, 3)))
    layer.forward(np.array([[1, 2, 3]]))
    with pytest.raises(
        ShapeError,
        match=r"Embedding: dy must have shape \(1, 2, 3\) \(the output's\). Received: shape \(1, 3, 2\)",
    ):
        layer.backward(np.zeros((1, 3, 2)))


def test_embedding_repr_config_and_counts() -> None:
    layer = Embedding(100, 8, padding_idx=-1, rng=0)
    assert repr(layer) == "Embedding(100, 8, padding_idx=-1)"
    assert repr(Embedding(100, 8)) == "Embedding(100, 8)"
    again = rebuilt(layer)
    assert repr(again) == repr(layer) and not again.params["weight"][99].any()
    assert layer.output_shape((4, 30)) == (4, 8, 30) and layer.flops((4, 30)) == 0
    assert Embedding.config_parameters(to_config(layer)["args"]) == 800
    assert layer.params["weight"].dtype == np.float32


# ---- Conv1D ---------------------------------------------------------------------------------
def torch_conv1d(torch: Any, layer: Conv1D, length: int) -> Any:
    """The layer as a PyTorch function; "same" pads (asymmetric at even widths) through F.pad."""
    F = torch.nn.functional
    left, right = layer.pads(length)

    def fn(xt: Any, wt: Any, bt: Any = None) -> Any:
        return F.conv1d(F.pad(xt, (left, right)), wt, bt, stride=layer.stride, dilation=layer.dilation)

    return fn


# (N, C_in, C_out, L, kernel_size, stride, padding, dilation)
CONV_GRID = [
    (2, 3, 4, 9, 3, 1, 0, 1),
    (2, 3, 4, 9, 3, 2, 1, 1),  # (9 - 3 + 2) / 2 divides
    (2, 3, 4, 10, 3, 2, 1, 1),  # (10 - 3 + 2) / 2 does not
    (1, 2, 3, 11, 5, 3, 2, 1),
    (2, 3, 2, 8, 1, 1, 0, 1),  # width 1 (a 1x1 conv)
    (2, 3, 2, 9, 1, 2, 0, 1),  # width 1, stride 2
    (2, 3, 4, 12, 3, 1, 0, 2),  # dilation 2
    (2, 2, 3, 13, 4, 3, 1, 3),
    (2, 2, 3, 5, 5, 1, 0, 1),  # one output position
    (2, 2, 3, 7, 3, 1, "valid", 1),
    (2, 2, 3, 7, 3, 1, "same", 1),
    (2, 2, 3, 8, 4, 1, "same", 1),  # even width: the odd pad on the right
    (2, 2, 3, 9, 3, 2, "same", 1),
    (2, 2, 3, 10, 3, 3, "same", 2),
    (2, 2, 3, 1, 3, 1, "same", 1),  # one position in, one out
    (2, 4, 4, 9, 3, 1, 1, 1),  # C_out <= C_in at stride 1: dx by a second convolution
    (2, 4, 3, 9, 2, 1, 4, 1),  # padding larger than the width
    (4, 16, 8, 40, 5, 1, 2, 1),  # big enough for the threaded copies and adds
]


@pytest.mark.parametrize("case", CONV_GRID, ids=[str(c[3:]) for c in CONV_GRID])
def test_conv1d_matches_pytorch(torch, case) -> None:
    N, C_in, C_out, L, k, s, p, d = case
    rng = np.random.default_rng(7)
    layer = Conv1D(C_in, C_out, k, stride=s, padding=p, dilation=d, rng=0).astype(np.float64)
    x = rng.standard_normal((N, C_in, L))
    dy = rng.standard_normal(layer.output_shape(x.shape))
    _, dx = compare_with_torch(
        torch, layer, torch_conv1d(torch, layer, L), x, dy, ("weight", "bias"), atol=1e-12, where=str(case)
    )
    assert dx is not None and dx.shape == x.shape


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own note
@pytest.mark.parametrize("k, d", [(3, 1), (4, 1), (3, 2)])
def test_conv1d_same_equals_torch_same_at_stride_1(torch, k, d) -> None:
    layer = Conv1D(3, 2, k, padding="same", dilation=d, bias=False, rng=0).astype(np.float64)
    module = torch.nn.Conv1d(3, 2, k, padding="same", dilation=d, bias=False).double()
    with torch.no_grad():
        module.weight.copy_(torch.tensor(layer.params["weight"]))
    x = np.random.default_rng(1).standard_normal((2, 3, 8))
    compare_with_torch(
        torch, layer, module, x, np.random.default_rng(2).standard_normal((2, 2, 8)), atol=1e-12
    )


@pytest.mark.parametrize(
    "k, s, p, d", [(3, 1, 1, 1), (2, 2, 0, 1), (4, 1, "same", 1), (3, 2, "same", 2), (1, 1, 0, 1)]
)
def test_conv1d_gradcheck(k, s, p, d) -> None:
    layer = Conv1D(2, 3, k, stride=s, padding=p, dilation=d, rng=0)
    x = np.random.default_rng(3).standard_normal((2, 2, 7))
    result = gradcheck(layer, x)
    assert result.ok(1e-6), str(result)


@pytest.mark.parametrize("case", CONV_GRID[:9] + CONV_GRID[11:14], ids=str)
def test_conv1d_matches_loop_reference(case) -> None:
    N, C_in, C_out, L, k, s, p, d = case
    rng = np.random.default_rng(11)
    layer = Conv1D(C_in, C_out, k, stride=s, padding=p, dilation=d, rng=1).astype(np.float64)
    x = rng.standard_normal((N, C_in, L))
    dy = rng.standard_normal(layer.output_shape(x.shape))
    y = layer.forward(x).copy()
    dx = layer.backward(dy)
    w, b, pads = layer.params["weight"], layer.params["bias"], layer.pads(L)
    np.testing.assert_allclose(y, conv1d_forward_loop(x, w, b, pads, s, d), atol=1e-12)
    for got, ref in zip(
        (dx, layer.grads["weight"], layer.grads["bias"]),
        conv1d_backward_loop(dy, x, w, pads, s, d),
        strict=True,
    ):
        np.testing.assert_allclose(got, ref, atol=1e-12)


def test_conv1d_by_hand() -> None:
    layer = Conv1D(1, 1, 3, padding=1, rng=0).astype(np.float64)
    layer.params["weight"][:] = [[[1.0, 2.0, 3.0]]]
    layer.params["bias"][:] = 0.5
    # x = 1 2 3 4 with a zero each side: windows (0,1,2) (1,2,3) (2,3,4) (3,4,0)
    y = layer.forward(np.array([[[1.0, 2.0, 3.0, 4.0]]]))
    np.testing.assert_array_equal(y, [[[8.5, 14.5, 20.5, 11.5]]])  # e.g. 0*1 + 1*2 + 2*3 + 0.5
    dx = layer.backward(np.ones((1, 1, 4)))
    # Position 0 is read by tap 1 of output 0 and tap 0 of output 1: 2 + 1; position 3 by 3 + 2.
    np.testing.assert_array_equal(dx, [[[3.0, 6.0, 6.0, 5.0]]])
    np.testing.assert_array_equal(layer.grads["weight"], [[[6.0, 10.0, 9.0]]])  # tap k sums its inputs
    np.testing.assert_array_equal(layer.grads["bias"], [4.0])
    assert layer.formula((1, 1, 4)) == "floor((4 - 3 + 2*1) / 1) + 1 = 4"


def test_conv1d_formula_and_sizes() -> None:
    assert Conv1D(300, 100, 5).formula((64, 300, 200)) == "floor((200 - 5 + 2*0) / 1) + 1 = 196"
    assert Conv1D(1, 1, 3, dilation=2, stride=2).formula((1, 1, 10)) == (
        "floor((10 - 5 + 2*0) / 2) + 1 = 3 (effective kernel 2*(3-1)+1 = 5)"
    )
    assert Conv1D(1, 1, 4, stride=3, padding="same").formula((1, 1, 10)) == "same: ceil(10 / 3) = 4"
    assert Conv1D(1, 1, 4, padding="same").pads(7) == (1, 2)  # odd total: the extra one on the right
    assert Conv1D(2, 5, 3, stride=2, padding=1).output_shape((8, 2, 10)) == (8, 5, 5)
    assert Conv1D(2, 5, 3).flops((8, 2, 10)) == 2 * 2 * 3 * 5 * 8 + 5 * 8
    assert Conv1D.config_parameters({"in_channels": 2, "out_channels": 5, "kernel_size": 3}) == 35
    np.testing.assert_array_equal(
        Conv1D(1, 1, 3, padding="same").output_lengths(np.array([1, 4, 9]), 9), [2, 5, 9]
    )
    np.testing.assert_array_equal(
        Conv1D(1, 1, 3, stride=2).output_lengths(np.array([1, 2, 3, 9]), 9), [1, 1, 2, 4]
    )


def test_conv1d_shape_errors() -> None:
    msg = (
        r"Conv1D: kernel \(effective size 7\) is longer than the padded input: L \+ 2P = 4 \+ 2\*1 = 6 < 7; "
        r"L_out = floor\(\(4 - 7 \+ 2\*1\) / 1\) \+ 1 would be < 1. Received: input shape \(2, 1, 4\)"
    )
    with pytest.raises(ShapeError, match=msg):
        Conv1D(1, 1, 4, dilation=2, padding=1).forward(np.zeros((2, 1, 4)))
    with pytest.raises(
        ShapeError, match=r"Conv1D: input must have shape \(N, C, L\). Received: shape \(2, 3, 8, 8\)"
    ):
        Conv1D(3, 4, 3).forward(np.zeros((2, 3, 8, 8)))
    with pytest.raises(
        ShapeError,
        match=r"Conv1D: input must have 3 channels at axis 1 \(in_channels=3\). Received: shape \(2, 5, 8\)",
    ):
        Conv1D(3, 4, 3).output_shape((2, 5, 8))
    with pytest.raises(CnnlabError, match=r"backward\(\) called before forward\(\)"):
        Conv1D(1, 1, 3).backward(np.zeros((1, 1, 3)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"kernel_size": 0},
            "Conv1D: argument `kernel_size` must be a positive int. Received: kernel_size=0",
        ),
        ({"kernel_size": (3,)}, r"Received: kernel_size=\(3,\)"),
        ({"stride": 0}, "argument `stride` must be a positive int. Received: stride=0"),
        ({"dilation": -1}, "argument `dilation` must be a positive int. Received: dilation=-1"),
        ({"padding": -1}, "argument `padding` must be an int >= 0, 'valid' or 'same'. Received: padding=-1"),
        ({"padding": "full"}, "Received: padding='full'"),
        ({"in_channels": 0}, "argument `in_channels` must be a positive int. Received: in_channels=0"),
        (
            {"out_channels": True},
            "argument `out_channels` must be a positive int. Received: out_channels=True",
        ),
    ],
)
def test_conv1d_argument_errors(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Conv1D(**{"in_channels": 1, "out_channels": 2, "kernel_size": 3, **kwargs})


def test_conv1d_repr_config_init_and_first_layer() -> None:
    assert repr(Conv1D(300, 100, kernel_size=3)) == "Conv1D(300, 100, kernel_size=3)"
    layer = Conv1D(3, 8, 4, stride=2, padding="same", dilation=2, bias=False, rng=0)
    assert repr(layer) == "Conv1D(3, 8, kernel_size=4, stride=2, padding='same', dilation=2, bias=False)"
    again = rebuilt(layer)
    assert repr(again) == repr(layer) and again.output_shape((2, 3, 9)) == layer.output_shape((2, 3, 9))
    w = Conv1D(4, 8, 3, rng=0).params["weight"]
    assert w.shape == (8, 4, 3) and w.dtype == np.float32 and np.abs(w).max() <= 1 / np.sqrt(12)
    rng = np.random.default_rng(4)
    x, dy = rng.standard_normal((2, 3, 9)), rng.standard_normal((2, 4, 5))
    full = Conv1D(3, 4, 3, stride=2, padding=1, rng=0).astype(np.float64)
    full.forward(x)
    dx = full.backward(dy)
    first = Conv1D(3, 4, 3, stride=2, padding=1, rng=0).astype(np.float64)
    first.needs_input_grad = False
    first.forward(x)
    assert dx is not None and first.backward(dy) is None
    np.testing.assert_array_equal(first.grads["weight"], full.grads["weight"])


# ---- MaxPool1D / AvgPool1D ------------------------------------------------------------------
# (L, kernel_size, stride, padding, ceil_mode)
POOL_GRID = [
    (8, 2, None, 0, False),
    (9, 2, None, 0, False),  # does not divide: the last position is in no window
    (9, 3, 2, 1, False),
    (10, 3, 2, 1, True),
    (9, 2, 2, 0, True),  # ceil mode keeps a last partial window
    (7, 4, 3, 2, True),  # ceil mode drops a window that would start in the padding
    (11, 5, 1, 2, False),  # overlapping windows
    (6, 1, 1, 0, False),
    (5, 5, None, 0, False),
]


@pytest.mark.parametrize("case", POOL_GRID, ids=str)
def test_max_pool1d_matches_pytorch(torch, case) -> None:
    L, k, s, p, ceil = case
    layer = MaxPool1D(k, stride=s, padding=p, ceil_mode=ceil)
    x = np.random.default_rng(2).standard_normal((2, 3, L))
    dy = np.random.default_rng(3).standard_normal(layer.output_shape(x.shape))
    module = torch.nn.MaxPool1d(k, stride=s, padding=p, ceil_mode=ceil)
    compare_with_torch(torch, layer, module, x, dy, atol=1e-12, where=str(case))


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_GRID, ids=str)
def test_avg_pool1d_matches_pytorch(torch, case, include_pad) -> None:
    L, k, s, p, ceil = case
    layer = AvgPool1D(k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include_pad)
    x = np.random.default_rng(2).standard_normal((2, 3, L))
    dy = np.random.default_rng(3).standard_normal(layer.output_shape(x.shape))
    module = torch.nn.AvgPool1d(k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=include_pad)
    compare_with_torch(torch, layer, module, x, dy, atol=1e-12, where=str(case))


@pytest.mark.parametrize("cls", [MaxPool1D, AvgPool1D])
@pytest.mark.parametrize("k, s, p, ceil", [(2, None, 0, False), (3, 2, 1, True), (3, 1, 1, False)])
def test_pool1d_gradcheck(cls, k, s, p, ceil) -> None:
    x = np.random.default_rng(5).standard_normal((2, 2, 7))  # distinct values: no ties for max
    result = gradcheck(cls(k, stride=s, padding=p, ceil_mode=ceil), x)
    assert result.ok(1e-7), str(result)


def test_pool1d_by_hand() -> None:
    x = np.array([[[1.0, 5.0, 2.0, 2.0, 7.0]]])
    pool = MaxPool1D(3, stride=2, padding=1)  # windows (-inf,1,5) (5,2,2) (2,7,-inf)
    np.testing.assert_array_equal(pool.forward(x), [[[5.0, 5.0, 7.0]]])
    np.testing.assert_array_equal(pool.backward(np.array([[[1.0, 2.0, 4.0]]])), [[[0, 3.0, 0, 0, 4.0]]])
    avg = AvgPool1D(3, stride=2, padding=1)  # padded zeros count: divisor 3 everywhere
    np.testing.assert_allclose(avg.forward(x), [[[2.0, 3.0, 3.0]]])
    np.testing.assert_allclose(avg.backward(np.array([[[3.0, 3.0, 3.0]]])), [[[1.0, 2.0, 1.0, 2.0, 1.0]]])
    assert pool.formula(x.shape) == "floor((5 - 3 + 2*1) / 2) + 1 = 3"


def test_pool1d_errors_repr_and_config() -> None:
    with pytest.raises(
        ShapeError,
        match=r"MaxPool1D: input of shape \(1, 2, 3\) is too short for kernel_size=5, stride=5, padding=0: "
        r"L_out = floor\(\(3 - 5 \+ 2\*0\) / 5\) \+ 1 = 0",
    ):
        MaxPool1D(5).forward(np.zeros((1, 2, 3)))
    with pytest.raises(
        ShapeError, match=r"AvgPool1D: input must have shape \(N, C, L\). Received: shape \(1, 2, 3, 3\)"
    ):
        AvgPool1D(2).forward(np.zeros((1, 2, 3, 3)))
    with pytest.raises(
        ValueError,
        match=r"MaxPool1D: argument `padding` must be at most half of kernel_size=3 \(as in PyTorch\). "
        r"Received: padding=2",
    ):
        MaxPool1D(3, padding=2)
    with pytest.raises(
        ValueError, match=r"AvgPool1D: argument `stride` must be a positive int or None. Received: stride=0"
    ):
        AvgPool1D(2, stride=0)
    with pytest.raises(
        ValueError, match=r"argument `kernel_size` must be a positive int. Received: kernel_size=2.0"
    ):
        MaxPool1D(2.0)  # type: ignore[arg-type]
    pool = MaxPool1D(2)
    pool.forward(np.zeros((1, 1, 4)))
    with pytest.raises(
        ShapeError,
        match=r"MaxPool1D: dy must have shape \(1, 1, 2\) \(the output's\). Received: shape \(1, 1, 3\)",
    ):
        pool.backward(np.zeros((1, 1, 3)))
    assert repr(MaxPool1D(2)) == "MaxPool1D(2)"
    layer = AvgPool1D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    assert repr(layer) == "AvgPool1D(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)"
    assert repr(rebuilt(layer)) == repr(layer)
    assert layer.output_shape((4, 6, 10)) == (4, 6, 6) and layer.flops((4, 6, 10)) == 6 * 6 * 3


# ---- GlobalMaxPool1D ------------------------------------------------------------------------
class _Masked:
    """GlobalMaxPool1D with a fixed mask or lengths, as a one-argument layer for the helpers."""

    def __init__(self, **kwargs: Any) -> None:
        self.pool, self.kwargs = GlobalMaxPool1D(), kwargs
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.pool.forward(x, **self.kwargs)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.pool.backward(dy)


def test_global_max_pool1d_matches_pytorch(torch) -> None:
    x = np.random.default_rng(0).standard_normal((3, 4, 7))
    dy = np.random.default_rng(1).standard_normal((3, 4))
    module = torch.nn.Sequential(torch.nn.AdaptiveMaxPool1d(1), torch.nn.Flatten())
    compare_with_torch(torch, GlobalMaxPool1D(), module, x, dy, atol=1e-12)


def test_global_max_pool1d_mask_matches_pytorch_masked_fill(torch) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 7))
    x[:, :, 5:] += 10  # padding positions hold the largest values: they must not win
    lengths = np.array([5, 2, 7])
    mask = np.arange(7) < lengths[:, None]
    dy = rng.standard_normal((3, 4))

    def fn(xt: Any) -> Any:
        return xt.masked_fill(~torch.tensor(mask)[:, None, :], float("-inf")).amax(dim=2)

    y1, _ = compare_with_torch(torch, _Masked(lengths=lengths), fn, x, dy, atol=1e-12)
    y2, _ = compare_with_torch(torch, _Masked(mask=mask), fn, x, dy, atol=1e-12)
    np.testing.assert_array_equal(y1, y2)
    assert (y1[0] < 5).all()  # none of the +10 padded values won


@pytest.mark.parametrize(
    "kwargs", [{}, {"lengths": np.array([3, 6])}, {"mask": np.array([[1, 0, 1, 0, 1, 0]] * 2, bool)}]
)
def test_global_max_pool1d_gradcheck(kwargs) -> None:
    x = np.random.default_rng(6).standard_normal((2, 3, 6))
    result = gradcheck(_Masked(**kwargs), x)
    assert result.ok(1e-7), str(result)


def test_global_max_pool1d_by_hand_and_sizes() -> None:
    pool = GlobalMaxPool1D()
    x = np.array([[[1.0, 4.0, 9.0, 9.0], [2.0, 0.0, 2.0, -1.0]]])  # (N=1, C=2, L=4)
    np.testing.assert_array_equal(pool.forward(x), [[9.0, 2.0]])
    np.testing.assert_array_equal(
        pool.backward(np.array([[5.0, 7.0]])), [[[0, 0, 5.0, 0], [7.0, 0, 0, 0]]]
    )  # first max
    np.testing.assert_array_equal(pool.forward(x, lengths=np.array([2])), [[4.0, 2.0]])
    np.testing.assert_array_equal(pool.backward(np.array([[5.0, 7.0]])), [[[0, 5.0, 0, 0], [7.0, 0, 0, 0]]])
    assert pool.output_shape((8, 100, 48)) == (8, 100) and pool.flops((8, 100, 48)) == 4800
    assert repr(pool) == "GlobalMaxPool1D()" and repr(rebuilt(pool)) == "GlobalMaxPool1D()"


def test_global_max_pool1d_mask_errors() -> None:
    pool, x = GlobalMaxPool1D(), np.zeros((2, 3, 4))
    with pytest.raises(
        ValueError,
        match=r"GlobalMaxPool1D: every length must be in \[1, 4\] \(L = 4 positions\). "
        r"Received: lengths\[1\]=0",
    ):
        pool.forward(x, lengths=np.array([4, 0]))
    with pytest.raises(ValueError, match=r"Received: lengths\[0\]=5"):
        pool.forward(x, lengths=np.array([5, 1]))
    with pytest.raises(
        ShapeError,
        match=r"`lengths` must be 2 ints \(one per example, shape \(2,\)\). Received: shape \(3,\)",
    ):
        pool.forward(x, lengths=np.array([1, 2, 3]))
    with pytest.raises(
        ShapeError,
        match=r"`mask` must be a boolean array of shape \(2, 4\) \(True at real positions\). "
        r"Received: shape \(2, 4\), dtype int64",
    ):
        pool.forward(x, mask=np.ones((2, 4), np.int64))
    with pytest.raises(
        ValueError,
        match=r"every example needs at least one real position in `mask`. Received: no True in mask\[1\]",
    ):
        pool.forward(x, mask=np.array([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match="pass `mask` or `lengths`, not both"):
        pool.forward(x, mask=np.ones((2, 4), bool), lengths=np.array([1, 1]))
    with pytest.raises(
        ShapeError, match=r"GlobalMaxPool1D: input must have shape \(N, C, L\). Received: shape \(2, 3\)"
    ):
        pool.forward(np.zeros((2, 3)))


# ---- the package knows them -------------------------------------------------------------------
def test_registry_builds_every_text_layer_in_a_fresh_process() -> None:
    # A fresh interpreter: only the registry's own module discovery can make the types known.
    code = (
        "from cnnlab.layers.registry import build_from_config\n"
        "from cnnlab.layers.base import to_config\n"
        "configs = [\n"
        "    {'type': 'Embedding', 'args': {'num_embeddings': 9, 'embedding_dim': 4, 'padding_idx': 0}},\n"
        "    {'type': 'Conv1D', 'args': {'in_channels': 4, 'out_channels': 2, 'kernel_size': 3}},\n"
        "    {'type': 'MaxPool1D', 'args': {'kernel_size': 2}},\n"
        "    {'type': 'AvgPool1D', 'args': {'kernel_size': 2, 'count_include_pad': False}},\n"
        "    {'type': 'GlobalMaxPool1D', 'args': {}},\n"
        "]\n"
        "for c in configs:\n"
        "    layer = build_from_config(c)\n"
        "    assert to_config(layer)['args'] == {**to_config(layer)['args'], **c['args']}, c\n"
        "    print(repr(layer))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:5] == [
        "Embedding(9, 4, padding_idx=0)",
        "Conv1D(4, 2, kernel_size=3)",
        "MaxPool1D(2)",
        "AvgPool1D(2, count_include_pad=False)",
        "GlobalMaxPool1D()",
    ]


# ---- to_torch / from_torch / model.py / ONNX -------------------------------------------------
def text_model() -> Sequential:
    """Every text layer and the PyTorch mappings that differ (Conv1dSame, the 1-tuples of AvgPool1d)."""
    return Sequential(
        Embedding(50, 8, padding_idx=0, rng=0),
        Conv1D(8, 6, 3, stride=2, padding="same", rng=1),  # "same" at stride 2: Conv1dSame
        ReLU(),
        MaxPool1D(2, ceil_mode=True),
        Conv1D(6, 5, 4, padding="same", rng=2),  # even width: Conv1dSame too
        AvgPool1D(3, stride=1, padding=1, count_include_pad=False),
        Conv1D(5, 4, 2, dilation=2, padding=1, bias=False, rng=3),  # plain nn.Conv1d
        GlobalMaxPool1D(),
        Dense(4, 3, rng=4),
    ).astype(np.float64)


def tokens(n: int = 4, length: int = 23) -> np.ndarray:
    ids = np.random.default_rng(9).integers(1, 50, (n, length))
    ids[0, 15:] = 0  # padding at the end, as a batch of sentences has it
    return ids


def check_text_parity(torch: Any, model: Sequential, module: Any, ids: np.ndarray) -> float:
    """Outputs and every parameter gradient agree; returns the largest difference."""
    y = model.forward(ids)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    assert model.backward(dy) is None
    module.zero_grad(set_to_none=True)
    y_t = module(torch.tensor(ids))
    y_t.backward(torch.tensor(dy))
    errors = [float(np.abs(y_t.detach().numpy() - y).max())]
    grads = {p.path: p.grad for p in model.parameters()}
    named = dict(module.named_parameters())
    assert sorted(named) == sorted(grads)
    errors += [float(np.abs(param.grad.numpy() - grads[key]).max()) for key, param in named.items()]
    assert max(errors) < 1e-12, errors
    return max(errors)


def test_text_model_to_torch_and_back(torch) -> None:
    from cnnlab.interop.torch import from_torch, to_torch

    model = text_model()
    module = to_torch(model)
    M = torch_modules()
    kinds = [type(m) for m in module]
    assert kinds[0] is M.ChannelsFirstEmbedding and module[0].padding_idx == 0
    assert kinds[1] is kinds[4] is M.Conv1dSame and kinds[6] is torch.nn.Conv1d
    assert kinds[7] is M.GlobalMaxPool1d
    check_text_parity(torch, model, module, tokens())
    with torch.no_grad():  # torch-side weights unlike cnnlab's, for the other direction
        for value in module.parameters():
            value.copy_(torch.rand(value.shape, dtype=value.dtype) - 0.5)
    back = from_torch(module)
    assert repr(back) == repr(model)
    check_text_parity(torch, back, module, tokens())


def test_text_model_py_builds_the_same_network(torch) -> None:
    from cnnlab.interop.codegen import torch_source
    from cnnlab.interop.torch import to_torch

    model = text_model()
    module = to_torch(model).eval()
    source = torch_source(model)
    assert "class ChannelsFirstEmbedding(nn.Embedding)" in source and "class Conv1dSame" in source
    namespace: dict[str, Any] = {}
    exec(compile(source, "model.py", "exec"), namespace)  # the generated model.py
    net = namespace["build"]()
    net.load_state_dict(module.state_dict())
    ids = torch.tensor(tokens())
    assert torch.equal(net.eval()(ids), module(ids))


def test_from_torch_refuses_embedding_options_cnnlab_lacks(torch) -> None:
    from cnnlab.interop.torch import from_torch

    emb = torch_modules().ChannelsFirstEmbedding(10, 4, max_norm=1.0)
    with pytest.raises(CnnlabError, match="max_norm and scale_grad_by_freq are not supported"):
        from_torch(torch.nn.Sequential(emb))
    with pytest.raises(CnnlabError, match="only groups=1"):
        from_torch(torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, groups=2)))
    with pytest.raises(CnnlabError, match="dilation and return_indices are not supported"):
        from_torch(torch.nn.Sequential(torch.nn.MaxPool1d(2, dilation=2)))
    with pytest.raises(CnnlabError, match="has no cnnlab equivalent"):  # its output is (N, L, D)
        from_torch(torch.nn.Sequential(torch.nn.Embedding(10, 4)))
    layer = from_torch(torch.nn.Sequential(torch.nn.Conv1d(4, 2, 3, padding="same"), torch.nn.AvgPool1d(2)))
    assert (
        repr(layer[0]) == "Conv1D(4, 2, kernel_size=3, padding='same')" and repr(layer[1]) == "AvgPool1D(2)"
    )


def test_text_model_runs_in_onnxruntime(torch, tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from cnnlab.interop.torch import to_torch

    model = text_model().astype(np.float32).eval()
    path = tmp_path / "text.onnx"
    example = torch.tensor(tokens(2))
    # to_onnx feeds a float example; token ids need an int64 one, so torch's exporter directly
    # (the default, dynamo, as to_onnx's). The length is fixed, as a text dataset pads to one.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            to_torch(model).eval(),
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            input_names=["input"],
            output_names=["output"],
        )
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    declared = {op for layer in model.layers for op in (layer.torch.onnx_ops if layer.torch else ())}
    assert {"Gather", "Transpose", "Conv", "MaxPool", "AveragePool", "ReduceMax"} <= declared
    assert declared & ops >= {"Gather", "Conv", "MaxPool", "AveragePool"}, ops
    session = onnxruntime.InferenceSession(str(path))
    ids = tokens(5)  # another batch size than the example's
    got = session.run(None, {"input": ids})[0]
    np.testing.assert_allclose(got, model.forward(ids), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dynamo", [False, True])
def test_same_padding_at_stride_2_survives_both_onnx_exporters(torch, tmp_path, dynamo) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from cnnlab.interop.onnx import to_onnx

    model = Sequential(Conv1D(2, 3, 3, stride=2, padding="same", rng=0))
    path = to_onnx(model, tmp_path / "conv1d.onnx", (2, 23), dynamo=dynamo)
    x = np.random.default_rng(0).standard_normal((3, 2, 23)).astype(np.float32)
    got = onnxruntime.InferenceSession(str(path)).run(None, {"input": x})[0]
    assert got.shape == (3, 3, 12)  # ceil(23 / 2): the TorchScript exporter once made it 11
    np.testing.assert_allclose(got, model.forward(x), atol=1e-6)


def test_text_model_saves_loads_and_summarizes(tmp_path) -> None:
    from cnnlab.io import load, save

    model = text_model()
    save(model, tmp_path / "text.npz")
    again = load(tmp_path / "text.npz")
    assert repr(again) == repr(model)
    np.testing.assert_array_equal(again.forward(tokens()), model.forward(tokens()))
    rows = model.summary((23,), print_fn=lambda *_: None)
    assert [r["output_shape"] for r in rows[:2]] == [(8, 23), (6, 12)]
    assert rows[1]["formula"] == "same: ceil(23 / 2) = 12" and rows[0]["params"] == 400
