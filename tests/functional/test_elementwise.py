"""functional.elementwise: the residual add and ReLU on all cores equal the plain NumPy expressions."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional.elementwise import add, add_relu, relu_backward


def _pairs(rng):
    """(a, b) of one shape: channel-first and NCHW memory, mixed dtypes, big enough for threads."""
    shape = (32, 4, 32, 32)  # 2**17 values: split over the worker threads
    cnhw = np.moveaxis(rng.standard_normal((4, 32, 32, 32)), 0, 1)  # (N, C, H, W) view of (C, N, H, W)
    nchw = rng.standard_normal(shape)
    yield cnhw, nchw
    yield nchw, cnhw.astype(np.float32)
    yield nchw.astype(np.float32), nchw[::-1].astype(np.float32)
    yield rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))  # small: inline
    yield rng.standard_normal(7), rng.standard_normal(7)  # no channel axis


def test_each_function_equals_the_numpy_expression_bit_for_bit(rng):
    for a, b in _pairs(rng):
        for got, want in (
            (add(a, b), a + b),
            (add_relu(a, b), np.maximum(a + b, 0)),
            (relu_backward(b, np.maximum(a, 0)), b * (a > 0)),
        ):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)


def test_the_output_keeps_the_first_arguments_memory_order(rng):
    a = np.moveaxis(rng.standard_normal((4, 32, 32, 32)), 0, 1)  # channel-first memory
    for out in (add(a, a), add_relu(a, a), relu_backward(a, a)):
        assert np.moveaxis(out, 1, 0).flags.c_contiguous


@pytest.mark.parametrize("fn", [add, add_relu, relu_backward])
def test_nan_and_inf_pass_as_in_numpy(fn):
    a = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0]])
    b = np.array([[1.0, -np.inf, 1.0, -0.0, 0.0, np.nan]])
    with np.errstate(invalid="ignore"):
        want = {add: a + b, add_relu: np.maximum(a + b, 0), relu_backward: a * (b > 0)}[fn]
        np.testing.assert_array_equal(fn(a, b), want)
