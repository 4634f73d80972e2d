"""Residual: y = block(x) + shortcut(x); gradcheck, PyTorch parity, keys, config, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from torch_compare import compare_with_torch


def _torch_residual(torch, block, shortcut=None):
    """A torch module with attributes `block` and `shortcut`, as cnnlab's state_dict keys expect."""

    class TorchResidual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block
            self.shortcut = shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    return TorchResidual()


def _mlp_pair(torch, with_shortcut: bool):
    nn = torch.nn
    out = 5 if with_shortcut else 4
    ours = Residual(
        Sequential(Dense(4, 6, rng=0), BatchNorm1D(6), ReLU(), Dense(6, out, rng=1)),
        Sequential(Dense(4, 5, rng=2)) if with_shortcut else None,
    ).astype(np.float64)
    torch.manual_seed(0)
    ref = _torch_residual(
        torch,
        nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, out)),
        nn.Sequential(nn.Linear(4, 5)) if with_shortcut else None,
    ).double()
    return ours, ref


@pytest.mark.parametrize("with_shortcut", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_matches_torch(torch, rng, with_shortcut, training):
    ours, ref = _mlp_pair(torch, with_shortcut)
    ref.block[1].running_mean.uniform_(-1, 1)  # non-trivial running stats for eval mode
    ref.block[1].running_var.uniform_(0.5, 2)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    ours.load_state_dict(state)
    assert sorted(ours.state_dict()) == sorted(k for k in state if "num_batches" not in k)
    ours.train(training)
    ref.train(training)
    x = rng.standard_normal((8, 4))
    dy = rng.standard_normal(ours.output_shape(x.shape))
    compare_with_torch(torch, ours, ref, x, dy)


@pytest.mark.parametrize("with_shortcut", [False, True])
def test_gradcheck(rng, with_shortcut):
    # no bias before BatchNorm: its gradient is exactly 0, which a relative error cannot check
    block = Sequential(Dense(3, 4, bias=False, rng=0), BatchNorm1D(4), ReLU(), Dense(4, 3, rng=1))
    layer = Residual(block, Dense(3, 3, rng=2) if with_shortcut else None)
    # shift away from ReLU's kink: finite differences need a smooth neighbourhood
    result = gradcheck(layer, rng.standard_normal((5, 3)) + 0.1)
    assert result.ok(1e-6), str(result)


def test_gradcheck_feature_maps(rng):
    layer = Residual(Sequential(BatchNorm2D(2), ReLU()), BatchNorm2D(2))
    assert gradcheck(layer, rng.standard_normal((3, 2, 2, 2))).ok(1e-6)


def test_identity_shortcut_hand_computed():
    res = Residual(Dense(2, 2, bias=False, rng=0)).astype(np.float64)
    res.block.params["weight"] = np.array([[2.0, 0.0], [0.0, 3.0]])
    y = res.forward(np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(y, [[3.0, 4.0]])  # (2x + x, 3x + x)
    np.testing.assert_allclose(res.backward(np.array([[1.0, 1.0]])), [[3.0, 4.0]])


def test_children_and_keys():
    res = Residual(Sequential(Dense(2, 2, rng=0)))
    assert list(res.children()) == ["block"]
    assert list(res.state_dict()) == ["block.0.weight", "block.0.bias"]
    res = Residual(Sequential(Dense(2, 3, rng=0)), Sequential(Dense(2, 3, rng=1)))
    assert list(res.children()) == ["block", "shortcut"]
    assert list(res.state_dict()) == [
        "block.0.weight",
        "block.0.bias",
        "shortcut.0.weight",
        "shortcut.0.bias",
    ]
    assert [p.path for p in res.parameters()] == list(res.state_dict())


def test_config_round_trip_and_repr():
    res = Residual(Sequential(Dense(2, 3, rng=0), ReLU()), Dense(2, 3, rng=1))
    assert res.get_config() == {"block": res.block, "shortcut": res.shortcut}
    config = to_config(res)
    assert config["args"]["shortcut"] == {
        "type": "Dense",
        "args": {"in_features": 2, "out_features": 3, "bias": True},
    }
    rebuilt = from_config(config)
    assert isinstance(rebuilt, Residual) and to_config(rebuilt) == config
    assert to_config(from_config(to_config(Residual(ReLU()))))["args"] == {
        "block": {"type": "ReLU", "args": {}},
        "shortcut": None,
    }
    assert repr(res) == (
        "Residual(\n"
        "  (block): Sequential(\n"
        "    (0): Dense(2, 3)\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (shortcut): Dense(2, 3)\n"
        ")"
    )
    assert repr(Residual(ReLU())) == "Residual(\n  (block): ReLU()\n)"


def test_output_shape():
    assert Residual(Dense(4, 4, rng=0)).output_shape((7, 4)) == (7, 4)
    assert Residual(Dense(4, 3, rng=0), Dense(4, 3, rng=0)).output_shape((7, 4)) == (7, 3)


def test_shape_mismatch_errors():
    msg = (
        r"Residual: block output and input \(identity shortcut\) must have the same shape to be added\. "
        r"Received: block output shape \(2, 3\), input \(identity shortcut\) shape \(2, 4\)\. "
        r"Use a shortcut layer .* kernel_size=1"
    )
    res = Residual(Dense(4, 3, rng=0))
    with pytest.raises(ShapeError, match=msg):
        res.forward(np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=msg):
        res.output_shape((2, 4))
    res = Residual(Dense(4, 3, rng=0), Dense(4, 5, rng=0))
    with pytest.raises(ShapeError, match=r"block output shape \(2, 3\), shortcut output shape \(2, 5\)"):
        res.forward(np.zeros((2, 4)))


def test_bad_arguments_and_backward_before_forward():
    with pytest.raises(
        ValueError, match=r"Residual: argument `block` must be a cnnlab Layer\. Received: block=3"
    ):
        Residual(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"argument `shortcut` must be a cnnlab Layer or None"):
        Residual(ReLU(), "conv")  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match=r"Residual: backward\(\) called before forward\(\)"):
        Residual(ReLU()).backward(np.zeros((1, 2)))


def test_train_eval_astype_recurse():
    res = Residual(Sequential(BatchNorm1D(2)), BatchNorm1D(2))
    assert res.eval() is res
    assert not res.block.training and not res.block[0].training and not res.shortcut.training
    assert res.astype(np.float64) is res
    assert res.dtype == np.float64
    assert all(v.dtype == np.float64 for v in res.state_dict().values())
