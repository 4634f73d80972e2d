"""Dense and Flatten: gradchecks, PyTorch parity, init, errors, reprs, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.dense import Dense
from cnnlab.layers.reshape import Flatten
from torch_compare import compare_with_torch


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("n_in", "n_out"), [(1, 1), (5, 3), (7, 4)])
def test_dense_gradcheck(bias, n_in, n_out, rng):
    layer = Dense(n_in, n_out, bias=bias, rng=0)
    result = gradcheck(layer, rng.standard_normal((3, n_in)))
    assert result.ok(1e-6), str(result)
    assert set(result.errors) == ({"input", "weight", "bias"} if bias else {"input", "weight"})


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("N", "n_in", "n_out"), [(1, 3, 2), (4, 10, 7), (6, 64, 33)])
def test_dense_matches_torch_linear(torch, bias, N, n_in, n_out, rng):
    layer = Dense(n_in, n_out, bias=bias, rng=1).astype(np.float64)
    x = rng.standard_normal((N, n_in))
    dy = rng.standard_normal((N, n_out))
    params = ("weight", "bias") if bias else ("weight",)
    fn = torch.nn.functional.linear  # linear(x, weight, bias=None)
    y, _ = compare_with_torch(torch, layer, fn, x, dy, params, rtol=1e-10, atol=1e-12)
    assert layer.output_shape(x.shape) == y.shape


def test_dense_hand_case():
    layer = Dense(2, 1, rng=0).astype(np.float64)
    layer.params["weight"][:] = [[2.0, -1.0]]
    layer.params["bias"][:] = [0.5]
    np.testing.assert_array_equal(layer.forward(np.array([[3.0, 4.0]])), [[2.5]])  # 6 - 4 + 0.5
    np.testing.assert_array_equal(layer.backward(np.array([[2.0]])), [[4.0, -2.0]])
    np.testing.assert_array_equal(layer.grads["weight"], [[6.0, 8.0]])
    np.testing.assert_array_equal(layer.grads["bias"], [2.0])


def test_dense_init_torch_default_and_seeded():
    layer = Dense(100, 50, rng=0)
    bound = 1 / math.sqrt(100)
    for name, shape in (("weight", (50, 100)), ("bias", (50,))):
        value = layer.params[name]
        assert value.shape == shape
        assert value.dtype == np.float32
        assert np.abs(value).max() <= bound
        assert np.abs(value).max() > 0.9 * bound  # fills the range, not a narrower one
    np.testing.assert_array_equal(Dense(100, 50, rng=0).params["weight"], layer.params["weight"])
    assert not np.array_equal(Dense(100, 50, rng=1).params["weight"], layer.params["weight"])
    assert "bias" not in Dense(3, 2, bias=False).params


def test_dense_float32_stays_float32():
    layer = Dense(4, 3, rng=0)
    y = layer.forward(np.ones((2, 4), dtype=np.float32))
    assert y.dtype == np.float32
    layer.backward(np.ones_like(y))
    assert layer.grads["weight"].dtype == np.float32 and layer.grads["bias"].dtype == np.float32


def test_dense_shape_errors():
    layer = Dense(3136, 128)
    with pytest.raises(
        ShapeError,
        match=r"Dense: input must have shape \(N, in_features\) = \(N, 3136\)\. "
        r"Received: shape \(2, 100\)$",
    ):
        layer.forward(np.zeros((2, 100), dtype=np.float32))
    msg = (
        r"Received: shape \(2, 64, 7, 7\)\. "
        r"Add Flatten\(\) before Dense to turn .* into \(N, 64\*7\*7\) = \(N, 3136\)"
    )
    with pytest.raises(ShapeError, match=msg):
        layer.forward(np.zeros((2, 64, 7, 7), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"Add Flatten\(\) before Dense"):
        layer.output_shape((1, 64, 7, 7))
    assert layer.output_shape((5, 3136)) == (5, 128)
    with pytest.raises(TypeError, match=r"Dense: input must be a numpy.ndarray. Received: list"):
        Dense(2, 1).forward([[1.0, 2.0]])  # type: ignore[arg-type]


def test_dense_argument_errors():
    with pytest.raises(
        ValueError, match=r"Dense: argument `in_features` must be a positive int. Received: in_features=0"
    ):
        Dense(0, 3)
    with pytest.raises(ValueError, match=r"argument `out_features` .* Received: out_features=2.0"):
        Dense(3, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"argument `bias` must be True or False. Received: bias='yes'"):
        Dense(3, 2, bias="yes")  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match=r"Dense: backward\(\) called before forward\(\)"):
        Dense(3, 2).backward(np.ones((1, 2)))


def test_dense_repr_and_config():
    assert repr(Dense(3136, 128)) == "Dense(3136, 128)"
    assert repr(Dense(4, 2, bias=False, rng=3)) == "Dense(4, 2, bias=False)"
    layer = Dense(4, 2, bias=False, rng=3)
    assert layer.get_config() == {"in_features": 4, "out_features": 2, "bias": False}
    rebuilt = Dense(**layer.get_config())
    assert repr(rebuilt) == repr(layer) and set(rebuilt.params) == {"weight"}
    assert repr(from_config(to_config(layer))) == "Dense(4, 2, bias=False)"


# ---- Flatten ----------------------------------------------------------------------------------
def test_flatten_forward_backward_and_torch_order(torch, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    y = layer.forward(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y, torch.nn.Flatten()(torch.tensor(x)).numpy())
    dy = rng.standard_normal((2, 60))
    np.testing.assert_array_equal(layer.backward(dy), dy.reshape(2, 3, 4, 5))
    assert gradcheck(layer, x).ok(1e-8)


def test_flatten_shapes_errors_repr():
    layer = Flatten()
    assert layer.output_shape((1, 64, 7, 7)) == (1, 3136)
    assert layer.output_shape((8, 10)) == (8, 10)
    with pytest.raises(ShapeError, match=r"Flatten: input must have a batch axis .* Received: shape \(5,\)"):
        layer.forward(np.zeros(5))
    with pytest.raises(CnnlabError, match=r"Flatten: backward\(\) called before forward\(\)"):
        Flatten().backward(np.zeros((1, 2)))
    assert repr(layer) == "Flatten()"
    assert repr(from_config(to_config(layer))) == "Flatten()"


def test_flatten_then_dense_matches_dense_error_hint():
    x = np.zeros((2, 64, 7, 7), dtype=np.float32)
    assert Dense(3136, 10).forward(Flatten().forward(x)).shape == (2, 10)
