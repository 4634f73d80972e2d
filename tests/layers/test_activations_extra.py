"""ReLU6, Hardswish and LogSoftmax: PyTorch parity (kinks included), gradchecks, hand cases, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.activations_extra import Hardswish, LogSoftmax, ReLU6
from cnnlab.layers.base import from_config, to_config
from torch_compare import compare_with_torch

SHAPES = [(4, 7), (2, 3, 5, 5), (2, 3, 4)]


def with_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random values spanning every piece, plus exact kinks (-3, 0, 3, 6) and large values."""
    x = rng.standard_normal(shape) * 4
    kinks = np.array([-3.0, 0.0, 3.0, 6.0, 40.0, -40.0])
    x.flat[: kinks.size] = kinks
    return x


def away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.05 from every kink, so central differences never straddle one."""
    x = rng.standard_normal(shape) * 4
    near = np.min(np.abs(x[..., None] - np.array([-3.0, 0.0, 3.0, 6.0])), axis=-1) < 0.05
    return np.where(near, 1.5, x)


@pytest.mark.parametrize("shape", SHAPES)
def test_relu6_and_hardswish_match_torch(torch, shape, rng) -> None:
    x, dy = with_kinks(rng, shape), rng.standard_normal(shape)
    compare_with_torch(torch, ReLU6(), torch.nn.functional.relu6, x, dy, where="ReLU6")
    compare_with_torch(torch, Hardswish(), torch.nn.functional.hardswish, x, dy, where="Hardswish")


@pytest.mark.parametrize(
    ("shape", "axis"), [((4, 7), 1), ((4, 7), -1), ((4, 7), 0), ((2, 3, 5, 5), 1), ((2, 3, 5, 5), 2)]
)
def test_log_softmax_matches_torch(torch, shape, axis, rng) -> None:
    x, dy = rng.standard_normal(shape) * 5, rng.standard_normal(shape)
    x.flat[0] = 1000.0  # a huge logit: log-sum-exp keeps everything finite
    fn = torch.nn.LogSoftmax(dim=axis)
    y, _ = compare_with_torch(torch, LogSoftmax(axis), fn, x, dy, atol=1e-9, where=f"axis={axis}")
    assert np.allclose(np.exp(y).sum(axis=axis), 1.0)


@pytest.mark.parametrize("layer", [ReLU6(), Hardswish(), LogSoftmax(), LogSoftmax(-1)], ids=repr)
@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4, 4)])
def test_gradcheck(layer, shape, rng) -> None:
    assert gradcheck(layer, away_from_kinks(rng, shape)).ok(1e-6)


def test_hand_cases() -> None:
    x = np.array([-4.0, -3.0, -1.5, 0.0, 3.0, 4.0, 6.0, 7.0])
    relu6 = ReLU6()
    np.testing.assert_array_equal(relu6.forward(x), [0, 0, 0, 0, 3, 4, 6, 6])
    np.testing.assert_array_equal(relu6.backward(np.ones(8)), [0, 0, 0, 0, 1, 1, 0, 0])
    hs = Hardswish()
    # x * (x + 3) / 6 between -3 and 3: -1.5 * 1.5 / 6 = -0.375; 3 * 6 / 6 = 3
    np.testing.assert_allclose(hs.forward(x), [0, 0, -0.375, 0, 3, 4, 6, 7])
    # slope x/3 + 1/2 on (-3, 3): 0 at -1.5, 1/2 at 0; at the kinks PyTorch's 0 (-3) and 1 (3)
    np.testing.assert_allclose(hs.backward(np.ones(8)), [0, 0, 0, 0.5, 1, 1, 1, 1])
    y = LogSoftmax().forward(np.log(np.array([[1.0, 3.0]])))  # softmax = [1/4, 3/4]
    np.testing.assert_allclose(y, np.log([[0.25, 0.75]]))


def test_dtype_is_kept() -> None:
    x = np.linspace(-5, 5, 12, dtype=np.float32).reshape(3, 4)
    for layer in (ReLU6(), Hardswish(), LogSoftmax()):
        assert layer.forward(x).dtype == np.float32
        assert layer.backward(np.ones_like(x)).dtype == np.float32


def test_errors_and_config() -> None:
    with pytest.raises(ValueError, match=r"LogSoftmax: argument `axis` must be an int. Received: axis=1.0"):
        LogSoftmax(1.0)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"LogSoftmax: input must have an axis 2 .*Received: shape \(3, 4\)"):
        LogSoftmax(2).forward(np.zeros((3, 4)))
    for layer in (ReLU6(), Hardswish(), LogSoftmax()):
        with pytest.raises(CnnlabError, match="backward\\(\\) called before forward\\(\\)"):
            layer.backward(np.zeros((2, 2)))
    assert repr(LogSoftmax(-1)) == "LogSoftmax(axis=-1)" and repr(LogSoftmax()) == "LogSoftmax()"
    assert repr(from_config(to_config(LogSoftmax(-1)))) == "LogSoftmax(axis=-1)"


def test_log_softmax_without_dim_is_refused_from_torch(torch) -> None:
    with pytest.raises(CnnlabError, match="LogSoftmax needs an explicit dim"):
        LogSoftmax.from_torch_args(torch.nn.LogSoftmax())
