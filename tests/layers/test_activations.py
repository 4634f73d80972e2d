"""Activation layers: gradchecks, PyTorch parity, hand-computed cases, errors, reprs."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional import activations as F
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.base import from_config, to_config
from torch_compare import compare_with_torch


def away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random float64 values with |x| >= 0.05, so finite differences never straddle 0."""
    x = rng.standard_normal(shape) * 2
    return np.where(np.abs(x) < 0.05, 0.5, x)


ELEMENTWISE = [Sigmoid(), Tanh(), ReLU(), LeakyReLU(), LeakyReLU(0.01), ELU(), ELU(alpha=0.5), Softmax()]


@pytest.mark.parametrize("layer", ELEMENTWISE, ids=repr)
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 4)])
def test_gradcheck_elementwise(layer, shape, rng):
    assert gradcheck(layer, away_from_kinks(rng, shape)).ok(1e-6)


@pytest.mark.parametrize("shape", [(3, 6), (2, 6, 3, 4)])
@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_gradcheck_maxout(shape, pieces, rng):
    assert gradcheck(Maxout(pieces), rng.standard_normal(shape)).ok(1e-6)


def torch_version(torch, layer):
    tf = torch.nn.functional
    return {
        "Sigmoid": torch.sigmoid,
        "Tanh": torch.tanh,
        "ReLU": torch.relu,
        "LeakyReLU": lambda t: tf.leaky_relu(t, getattr(layer, "negative_slope", 0)),
        "ELU": lambda t: tf.elu(t, alpha=getattr(layer, "alpha", 0)),
        "Softmax": lambda t: torch.softmax(t, dim=1),
    }[layer.name]


@pytest.mark.parametrize(
    "layer",
    [Sigmoid(), Tanh(), ReLU(), LeakyReLU(), LeakyReLU(0.01), LeakyReLU(2.0), ELU(), ELU(2.0), Softmax()],
    ids=repr,
)
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 5)])
def test_matches_torch(torch, layer, shape, rng):
    x = rng.standard_normal(shape) * 3
    x.flat[::5] = 0.0  # exact zeros: the derivative chosen at the kink must match too
    x.flat[1] = 40.0
    x.flat[2] = -40.0
    dy = rng.standard_normal(shape)
    compare_with_torch(torch, layer, torch_version(torch, layer), x, dy, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pieces", [1, 2, 4])
@pytest.mark.parametrize("shape", [(5, 8), (2, 8, 3, 5)])
def test_maxout_matches_torch_reshape_max(torch, pieces, shape, rng):
    x = rng.standard_normal(shape)
    dy_shape = (shape[0], shape[1] // pieces, *shape[2:])
    dy = rng.standard_normal(dy_shape)
    layer = Maxout(pieces)
    fn = lambda t: t.reshape(shape[0], shape[1] // pieces, pieces, *shape[2:]).max(dim=2).values  # noqa: E731
    y, _ = compare_with_torch(torch, layer, fn, x, dy, rtol=1e-10, atol=0)
    assert layer.output_shape(shape) == y.shape


# ---- hand-computed tiny cases ---------------------------------------------------------------
def test_hand_computed_values():
    np.testing.assert_array_equal(LeakyReLU().forward(np.array([-10.0, 5.0])), [-1.0, 5.0])
    np.testing.assert_allclose(ELU().forward(np.array([-1.0])), [np.exp(-1) - 1], rtol=1e-15)
    np.testing.assert_array_equal(ReLU().forward(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(Sigmoid().forward(np.array([0.0, np.log(3.0)])), [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(Tanh().forward(np.array([np.log(2.0)])), [0.6], rtol=1e-15)  # (2-1/2)/(2+1/2)


def test_derivatives_at_zero_follow_pytorch():
    zero, one = np.zeros(1), np.ones(1)
    assert F.relu_backward(one, zero)[0] == 0.0
    assert F.leaky_relu_backward(one, zero, 0.1)[0] == pytest.approx(0.1)
    assert F.elu_backward(one, zero, 2.0)[0] == 2.0


def test_maxout_hand_case_and_ties_go_to_first():
    x = np.array([[1.0, 3.0, 2.0, 2.0]])  # groups (1, 3) and (2, 2): the second is a tie
    layer = Maxout(2)
    np.testing.assert_array_equal(layer.forward(x), [[3.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[10.0, 20.0]])), [[0.0, 10.0, 20.0, 0.0]])


def test_maxout_groups_consecutive_channels_4d():
    x = np.arange(2 * 6 * 2 * 2, dtype=np.float64).reshape(2, 6, 2, 2)
    y = Maxout(3).forward(x)
    assert y.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(y[:, 0], x[:, 2])  # max of channels 0, 1, 2
    np.testing.assert_array_equal(y[:, 1], x[:, 5])  # max of channels 3, 4, 5


def test_maxout_is_max_of_two_dense_pieces():
    from cnnlab.layers.dense import Dense

    rng = np.random.default_rng(0)
    dense = Dense(5, 3 * 2, rng=1).astype(np.float64)
    x = rng.standard_normal((4, 5))
    y = Maxout(2).forward(dense.forward(x))
    W, b = dense.params["weight"], dense.params["bias"]
    for c in range(3):
        expected = np.maximum(x @ W[2 * c] + b[2 * c], x @ W[2 * c + 1] + b[2 * c + 1])
        np.testing.assert_allclose(y[:, c], expected, rtol=1e-12)


# ---- stability --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_no_overflow_warnings(dtype):
    x = np.array([[-1000.0, -100.0, 0.0, 100.0, 1000.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is fine
        for layer in (Sigmoid(), Tanh(), ELU(), Softmax()):
            y = layer.forward(x)
            assert y.dtype == dtype
            assert np.all(np.isfinite(y))
            assert np.all(np.isfinite(layer.backward(np.ones_like(y))))
    np.testing.assert_array_equal(Sigmoid().forward(x)[0, [0, 4]], [0.0, 1.0])


def test_softmax_and_log_softmax_functions():
    x = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    p = F.softmax(x)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    logp = F.log_softmax(x)
    assert np.all(np.isfinite(logp))
    np.testing.assert_allclose(logp[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(np.exp(logp[1]), p[1], rtol=1e-14)


@pytest.mark.parametrize("layer", [Sigmoid(), ReLU(), LeakyReLU(), ELU(), Maxout(2), Softmax()], ids=repr)
def test_keeps_float32(layer):
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    assert layer.backward(np.ones_like(y)).dtype == np.float32


# ---- errors, reprs, configs ------------------------------------------------------------------
@pytest.mark.parametrize(
    "layer", [Sigmoid(), Tanh(), ReLU(), LeakyReLU(), ELU(), Maxout(), Softmax()], ids=repr
)
def test_backward_before_forward(layer):
    with pytest.raises(CnnlabError, match=rf"{layer.name}: backward\(\) called before forward\(\)"):
        layer.backward(np.ones((1, 2)))


def test_maxout_errors():
    with pytest.raises(
        ValueError, match=r"Maxout: argument `pieces` must be a positive int. Received: pieces=0"
    ):
        Maxout(0)
    with pytest.raises(ValueError, match=r"Received: pieces=1.5"):
        Maxout(1.5)  # type: ignore[arg-type]
    msg = (
        r"Maxout: input channels \(7\) must be divisible by pieces \(2\); 7 % 2 = 1. Received: shape \(3, 7\)"
    )
    with pytest.raises(ShapeError, match=msg):
        Maxout(2).forward(np.zeros((3, 7)))
    with pytest.raises(ShapeError, match=r"channels \(10\) must be divisible by pieces \(3\)"):
        Maxout(3).output_shape((1, 10, 4, 4))
    assert Maxout(3).output_shape((1, 12, 4, 4)) == (1, 4, 4, 4)


def test_argument_errors():
    with pytest.raises(
        ValueError, match=r"LeakyReLU: argument `negative_slope` must be a finite real number"
    ):
        LeakyReLU("0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ELU: argument `alpha` .* Received: alpha=nan"):
        ELU(float("nan"))
    with pytest.raises(ShapeError, match=r"Softmax: input must have shape \(N, K\)"):
        Softmax().forward(np.zeros(3))


def test_reprs():
    assert repr(LeakyReLU()) == "LeakyReLU()"
    assert repr(LeakyReLU(0.01)) == "LeakyReLU(negative_slope=0.01)"
    assert repr(ELU()) == "ELU()"
    assert repr(ELU(alpha=0.5)) == "ELU(alpha=0.5)"
    assert repr(Maxout()) == "Maxout()"
    assert repr(Maxout(3)) == "Maxout(pieces=3)"
    assert [repr(cls()) for cls in (Sigmoid, Tanh, ReLU, Softmax)] == [
        "Sigmoid()",
        "Tanh()",
        "ReLU()",
        "Softmax()",
    ]


@pytest.mark.parametrize(
    "layer", [Sigmoid(), Tanh(), ReLU(), LeakyReLU(0.2), ELU(0.3), Maxout(4), Softmax()], ids=repr
)
def test_config_rebuild(layer):
    rebuilt = type(layer)(**layer.get_config())
    assert repr(rebuilt) == repr(layer)
    assert repr(from_config(to_config(layer))) == repr(layer)
    assert layer.output_shape((2, 8, 3, 3)) == rebuilt.output_shape((2, 8, 3, 3))
