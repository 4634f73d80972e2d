"""AdaptiveAvgPool2D and ChannelSlice: PyTorch parity over a grid, gradchecks, hand cases, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.functional.adaptive_pool import adaptive_windows
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.channel_slice import ChannelSlice
from torch_compare import compare_with_torch

# (input shape, output size): dividing, not dividing (overlapping windows), upsampling, mixed, 1x1
ADAPTIVE_GRID = [
    ((2, 3, 12, 12), (6, 6)),
    ((2, 2, 13, 10), (6, 7)),  # windows of different lengths that overlap
    ((1, 2, 2, 3), (7, 7)),  # more cells than input: cells repeat (VGG's 7x7 on a 2x2 map)
    ((2, 1, 5, 1), (3, 4)),
    ((2, 4, 9, 7), 1),
    ((1, 2, 6, 6), (6, 6)),  # the identity
]


@pytest.mark.parametrize("case", ADAPTIVE_GRID, ids=str)
def test_adaptive_avg_pool_matches_torch(torch, case, rng) -> None:
    shape, size = case
    layer = AdaptiveAvgPool2D(size)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(layer.output_shape(shape))
    compare_with_torch(torch, layer, torch.nn.AdaptiveAvgPool2d(size), x, dy, atol=1e-13, where=str(case))


@pytest.mark.parametrize("case", ADAPTIVE_GRID, ids=str)
def test_adaptive_avg_pool_gradcheck(case, rng) -> None:
    shape, size = case
    assert gradcheck(AdaptiveAvgPool2D(size), rng.standard_normal(shape)).ok(1e-7)


def test_adaptive_avg_pool_hand_case() -> None:
    # 5 cells to 3: windows [0, 2), [1, 4), [3, 5) (floor(i*5/3) .. ceil((i+1)*5/3))
    assert adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 1, 1, 5)
    pool = AdaptiveAvgPool2D((1, 3))
    assert pool.forward(x).ravel().tolist() == [1.5, 3.0, 4.5]
    # Cell 0 spreads 1/2 over cells 0, 1; cell 1 1/3 over cells 1..3; cell 2 1/2 over 3, 4.
    dx = pool.backward(np.ones((1, 1, 1, 3))).ravel()
    np.testing.assert_allclose(dx, [0.5, 0.5 + 1 / 3, 1 / 3, 1 / 3 + 0.5, 0.5])


def test_adaptive_avg_pool_float32_config_and_errors() -> None:
    pool = AdaptiveAvgPool2D((6, 6))
    x = np.ones((2, 3, 4, 5), np.float32)
    y = pool.forward(x)
    assert y.shape == (2, 3, 6, 6) and y.dtype == np.float32 and pool.backward(y).dtype == np.float32
    assert repr(from_config(to_config(pool))) == "AdaptiveAvgPool2D((6, 6))"
    assert pool.flops((1, 3, 4, 5)) == 2 * 3 * (6 * 4 * 5 + 6 * 5 * 6)
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2D: argument `output_size` must be a positive int"):
        AdaptiveAvgPool2D(0)
    with pytest.raises(ShapeError, match=r"AdaptiveAvgPool2D: input must have shape \(N, C, H, W\)"):
        pool.output_shape((2, 3))
    with pytest.raises(
        ShapeError, match=r"dy must have shape \(2, 3, 6, 6\). Received: shape \(2, 3, 5, 5\)"
    ):
        pool.backward(np.ones((2, 3, 5, 5)))


@pytest.mark.parametrize(
    "case", [((2, 6, 3, 3), 0, 3), ((2, 6, 3, 3), 3, 6), ((3, 5, 4), 1, 4), ((2, 4), 2, 3)]
)
def test_channel_slice_matches_torch(torch, case, rng) -> None:
    shape, start, stop = case
    x = rng.standard_normal(shape)
    dy = rng.standard_normal((shape[0], stop - start, *shape[2:]))
    compare_with_torch(torch, ChannelSlice(start, stop), lambda t: t[:, start:stop], x, dy, atol=0)


def test_channel_slice_gradcheck_hand_case_and_errors(rng) -> None:
    assert gradcheck(ChannelSlice(1, 3), rng.standard_normal((2, 4, 3, 3))).ok(1e-7)
    s = ChannelSlice(1, 3)
    y = s.forward(np.arange(4.0).reshape(1, 4, 1, 1))
    assert y.ravel().tolist() == [1.0, 2.0]
    assert s.backward(np.ones_like(y)).ravel().tolist() == [0.0, 1.0, 1.0, 0.0]
    assert repr(from_config(to_config(s))) == "ChannelSlice(1, 3)"
    with pytest.raises(
        ValueError, match=r"ChannelSlice: argument `stop` must be an int greater than start=2"
    ):
        ChannelSlice(2, 2)
    with pytest.raises(ValueError, match=r"ChannelSlice: argument `start` must be an int >= 0"):
        ChannelSlice(-1, 2)
    with pytest.raises(ShapeError, match=r"C >= stop=3. Received: shape \(2, 2, 5, 5\)"):
        s.forward(np.ones((2, 2, 5, 5)))
