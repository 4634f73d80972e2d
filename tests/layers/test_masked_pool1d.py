"""MaskedMaxPool1D: max over time over the windows that start at a real token, told by the ids
(issue 27): parity with its PyTorch twin in float64 on padded batches, gradcheck, by hand, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.interop.torch import from_torch, to_torch
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.masked_pool1d import MaskedMaxPool1D, real_positions


def padded_ids(rng: np.random.Generator, lengths: list[int], L: int, pad_id: int = 0) -> np.ndarray:
    ids = rng.integers(pad_id + 1, pad_id + 20, size=(len(lengths), L))  # (N, L), no padding id
    for n, length in enumerate(lengths):
        ids[n, length:] = pad_id  # padding at the end, as the text encoder writes it
    return ids


class _WithIds:
    """The layer with fixed ids, as a one-argument layer for gradcheck."""

    def __init__(self, ids: np.ndarray) -> None:
        self.pool, self.ids = MaskedMaxPool1D(), ids
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.pool.forward(x, self.ids)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.pool.backward(dy)[0]


@pytest.mark.parametrize("pad_id", [0, 3])
def test_matches_the_torch_twin_on_padded_batches_float64(torch: Any, pad_id: int) -> None:
    rng = np.random.default_rng(0)
    L, L_out = 9, 7  # after a width-3 convolution
    ids = padded_ids(rng, [9, 5, 1, 0, 7], L, pad_id)  # one text of no tokens at all
    x = rng.standard_normal((5, 4, L_out))
    x[:, :, 5:] += 10.0  # the padded windows hold the largest values: they must not win
    layer = MaskedMaxPool1D(pad_id)
    module = to_torch(layer)
    assert type(module).__name__ == "MaskedMaxPool1d" and module.pad_id == pad_id
    x_t = torch.tensor(x, requires_grad=True)
    y_t = module(x_t, torch.from_numpy(ids))
    y = layer.forward(x, ids)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=0, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(dy))
    dx, d_ids = layer.backward(dy)
    assert d_ids is None
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=0, atol=1e-12)
    assert (y[1:4] < 5).all()  # texts of 5, 1 and 0 tokens: no padded window won
    np.testing.assert_array_equal(y[3], x[3, :, 0])  # no token: the first window stands in
    back = from_torch(module)
    assert type(back) is MaskedMaxPool1D and back.pad_id == pad_id


def test_gradcheck() -> None:
    rng = np.random.default_rng(1)
    ids = padded_ids(rng, [6, 3], 6)
    result = gradcheck(_WithIds(ids), rng.standard_normal((2, 3, 4)))
    assert result.ok(1e-7), str(result)


def test_by_hand_config_and_sizes() -> None:
    pool = MaskedMaxPool1D()
    x = np.array([[[1.0, 4.0, 9.0], [2.0, 0.0, 7.0]]])  # (N=1, C=2, L_out=3)
    ids = np.array([[5, 6, 0, 0]])  # (N=1, L=4): two tokens, so windows 0 and 1 are real
    np.testing.assert_array_equal(pool.forward(x, ids), [[4.0, 2.0]])
    dx, _ = pool.backward(np.array([[5.0, 7.0]]))
    np.testing.assert_array_equal(dx, [[[0, 5.0, 0], [7.0, 0, 0]]])
    assert real_positions(np.array([[0, 0], [1, 0]]), 2).tolist() == [[True, False], [True, False]]
    assert pool.output_shape((8, 100, 48), (8, 50)) == (8, 100)
    assert pool.flops((8, 100, 48), (8, 50)) == 4800 + 50
    assert (
        repr(pool) == "MaskedMaxPool1D()" and repr(MaskedMaxPool1D(pad_id=2)) == "MaskedMaxPool1D(pad_id=2)"
    )
    assert repr(from_config(to_config(MaskedMaxPool1D(pad_id=2)))) == "MaskedMaxPool1D(pad_id=2)"


def test_errors_name_the_input() -> None:
    pool, x = MaskedMaxPool1D(), np.zeros((2, 3, 4))
    with pytest.raises(
        TypeError, match=r"input 1 must be the integer token ids \(N, L\). Received: dtype float64"
    ):
        pool.forward(x, np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"L >= L_out = 4. Received: shape \(2, 3\)"):
        pool.forward(x, np.zeros((2, 3), np.int64))
    with pytest.raises(ShapeError, match=r"with N = 2 .*Received: shape \(3, 4\)"):
        pool.forward(x, np.zeros((3, 4), np.int64))
    with pytest.raises(ShapeError, match=r"takes two inputs.*Received: 1 input"):
        pool.output_shape((2, 3, 4))
    with pytest.raises(ValueError, match=r"pad_id.*an int >= 0"):
        MaskedMaxPool1D(pad_id=-1)
