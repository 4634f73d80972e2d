"""Dropout: train/eval behaviour, inverted scaling, determinism, gradients, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.dropout import Dropout


def test_train_drops_and_scales_kept_units():
    x = np.ones((50, 40))
    y = Dropout(0.25, rng=0).forward(x)
    values = set(np.unique(y).tolist())
    assert values == {0.0, 1 / 0.75}
    assert abs(np.mean(y == 0) - 0.25) < 0.03


def test_eval_is_identity():
    layer = Dropout(0.5, rng=0).eval()
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), dy)
    assert Dropout(0.5).eval().training is False


def test_p_zero_is_identity_in_training():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_expectation_is_preserved(p):
    x = np.full((400, 500), 3.0)
    y = Dropout(p, rng=0).forward(x)
    assert abs(y.mean() - 3.0) < 0.05  # inverted dropout: E[y] = x
    assert abs(np.mean(y == 0) - p) < 0.01


def test_same_seed_same_masks_and_masks_change_between_calls():
    x = np.ones((8, 8))
    a, b = Dropout(0.5, rng=42), Dropout(0.5, rng=42)
    y1a, y1b = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(y1a, y1b)
    y2a = a.forward(x)
    np.testing.assert_array_equal(y2a, b.forward(x))
    assert not np.array_equal(y1a, y2a)  # a fresh mask per forward
    gen = np.random.default_rng(7)
    c = Dropout(0.5, rng=gen)
    np.testing.assert_array_equal(c.forward(x), Dropout(0.5, rng=7).forward(x))


def test_backward_uses_the_forward_mask(rng):
    layer = Dropout(0.3, rng=0)
    x = rng.standard_normal((6, 7))
    y = layer.forward(x)
    dy = rng.standard_normal((6, 7))
    dx = layer.backward(dy)
    kept = y != 0
    np.testing.assert_allclose(dx[kept], dy[kept] / 0.7, rtol=1e-15)
    assert np.all(dx[~kept] == 0)


def test_gradcheck_eval_and_fixed_mask(rng):
    x = rng.standard_normal((3, 4))
    assert gradcheck(Dropout(0.5).eval(), x).ok(1e-8)

    class _FixedMask(Dropout):
        """Dropout whose generator restarts each forward, so every call draws the same mask."""

        def forward(self, x):
            self._rng = np.random.default_rng(3)
            return super().forward(x)

    assert gradcheck(_FixedMask(0.4), x).ok(1e-6)


def test_float32_kept():
    y = Dropout(0.5, rng=0).forward(np.ones((3, 3), dtype=np.float32))
    assert y.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True])
def test_bad_p(p):
    with pytest.raises(
        ValueError, match=rf"Dropout: argument `p` must be a number with 0 <= p < 1. Received: p={p!r}"
    ):
        Dropout(p)


def test_backward_before_forward():
    with pytest.raises(CnnlabError, match=r"Dropout: backward\(\) called before forward\(\)"):
        Dropout().backward(np.ones((1, 2)))


def test_repr_and_config():
    assert repr(Dropout()) == "Dropout()"
    assert repr(Dropout(0.25, rng=3)) == "Dropout(p=0.25)"
    assert Dropout(0.25, rng=3).get_config() == {"p": 0.25}
    assert repr(from_config(to_config(Dropout(0.3)))) == "Dropout(p=0.3)"
    copy.deepcopy(Dropout(0.3, rng=0))  # the generator deep-copies (gradcheck relies on it)
