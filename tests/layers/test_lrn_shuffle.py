"""LocalResponseNorm and ChannelShuffle: PyTorch parity over a grid, gradchecks, hand cases, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional.lrn import channel_window_sum
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.shuffle import ChannelShuffle
from torch_compare import compare_with_torch

# (shape, size, alpha, beta, k): odd and even sizes, windows wider than the channels, 3-D input
LRN_GRID = [
    ((2, 8, 5, 5), 5, 1e-4, 0.75, 2.0),  # AlexNet
    ((2, 7, 4, 3), 3, 0.5, 0.75, 1.0),  # large alpha: the inhibition term matters
    ((2, 6, 3, 3), 4, 0.9, 0.6, 1.5),  # even size: window c-2 ... c+1
    ((1, 3, 4, 4), 7, 2.0, 1.3, 0.5),  # window wider than the channels
    ((2, 5, 6), 2, 1.0, 0.75, 1.0),  # (N, C, L)
    ((3, 4, 2, 2), 1, 1.0, 2.0, 1.0),  # size 1: each channel alone
]


@pytest.mark.parametrize("case", LRN_GRID, ids=str)
def test_lrn_matches_torch(torch, case, rng) -> None:
    shape, size, alpha, beta, k = case
    x, dy = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    fn = torch.nn.LocalResponseNorm(size, alpha, beta, k)
    compare_with_torch(torch, LocalResponseNorm(size, alpha, beta, k), fn, x, dy, atol=1e-12, where=str(case))


@pytest.mark.parametrize("case", LRN_GRID, ids=str)
def test_lrn_gradcheck(case, rng) -> None:
    shape, size, alpha, beta, k = case
    assert gradcheck(LocalResponseNorm(size, alpha, beta, k), rng.standard_normal(shape)).ok(1e-7)


def test_lrn_hand_case() -> None:
    # Channels 1, 2, 3 at one pixel, size 3, alpha 3, beta 1, k 1: d_c = 1 + (sum of squares in the window)
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    lrn = LocalResponseNorm(3, alpha=3.0, beta=1.0, k=1.0)
    y = lrn.forward(x).ravel()
    np.testing.assert_allclose(y, [1 / (1 + 1 + 4), 2 / (1 + 1 + 4 + 9), 3 / (1 + 4 + 9)])
    assert channel_window_sum(np.arange(5.0).reshape(1, 5), 2, 1).tolist() == [[1.0, 3.0, 6.0, 10.0, 9.0]]


def test_lrn_float32_and_errors() -> None:
    x = np.ones((2, 4, 3, 3), np.float32)
    lrn = LocalResponseNorm(3)
    assert lrn.forward(x).dtype == np.float32 and lrn.backward(x).dtype == np.float32
    with pytest.raises(
        ValueError, match=r"LocalResponseNorm: argument `size` must be a positive int. Received: size=0"
    ):
        LocalResponseNorm(0)
    with pytest.raises(ValueError, match=r"argument `beta` must be a finite real number. Received: beta=nan"):
        LocalResponseNorm(3, beta=float("nan"))
    with pytest.raises(
        ShapeError, match=r"LocalResponseNorm: input must have shape \(N, C, H, W\).*Received: shape \(2, 4\)"
    ):
        LocalResponseNorm(3).forward(np.ones((2, 4)))
    with pytest.raises(CnnlabError, match="backward\\(\\) called before forward"):
        LocalResponseNorm(3).backward(x)
    assert repr(LocalResponseNorm(5, k=2.0)) == "LocalResponseNorm(5, k=2.0)"
    assert repr(from_config(to_config(LocalResponseNorm(4, 0.5, 1.0, 2.0)))) == (
        "LocalResponseNorm(4, alpha=0.5, beta=1.0, k=2.0)"
    )
    assert LocalResponseNorm(5).flops((1, 4, 2, 2)) == 16 * 10


@pytest.mark.parametrize(
    ("shape", "groups"),
    [((2, 6, 3, 3), 2), ((2, 6, 3, 3), 3), ((2, 12, 2, 5), 4), ((1, 5, 4), 5), ((2, 4, 3, 3), 1)],
)
def test_shuffle_matches_torch_and_gradcheck(torch, shape, groups, rng) -> None:
    x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
    compare_with_torch(torch, ChannelShuffle(groups), torch.nn.ChannelShuffle(groups), x, dy, atol=0)
    assert gradcheck(ChannelShuffle(groups), x).ok(1e-8)


def test_shuffle_hand_case_and_errors() -> None:
    shuffle = ChannelShuffle(3)
    x = np.arange(6.0).reshape(1, 6, 1, 1)  # groups (0, 1), (2, 3), (4, 5)
    assert shuffle.forward(x).ravel().tolist() == [0, 2, 4, 1, 3, 5]
    assert shuffle.backward(shuffle.forward(x)).ravel().tolist() == [0, 1, 2, 3, 4, 5]  # the inverse
    with pytest.raises(ShapeError, match=r"C divisible by groups=4. Received: shape \(1, 6, 1, 1\)"):
        ChannelShuffle(4).forward(x)
    with pytest.raises(
        ValueError, match=r"ChannelShuffle: argument `groups` must be a positive int. Received: groups=0"
    ):
        ChannelShuffle(0)
    with pytest.raises(ShapeError, match=r"dy must have shape \(1, 6, 1, 1\). Received: shape \(1, 6\)"):
        shuffle.backward(np.zeros((1, 6)))
    assert repr(from_config(to_config(ChannelShuffle(2)))) == "ChannelShuffle(2)"


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn_matches_onnxruntime_lrn(size, rng) -> None:
    """ONNX's LRN is the same for odd sizes (onnxruntime takes only odd ones)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=0.5, beta=0.75, bias=2.0)
    graph = helper.make_graph(
        [node],
        "lrn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((2, 6, 3, 3)).astype(np.float32)
    (y_ort,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    y = LocalResponseNorm(size, alpha=0.5, beta=0.75, k=2.0).forward(x)
    np.testing.assert_allclose(y, y_ort, rtol=1e-6, atol=1e-6)
