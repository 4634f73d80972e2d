"""The shared layer contract (base.Layer): modes, dtype, parameters, state dicts, configs, repr."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import LAYER_TYPES, Layer, Param, from_config, to_config
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential


class _Scale(Layer):
    """y = weight * x: the smallest layer with a parameter (the leading _ keeps it unregistered)."""

    def __init__(self) -> None:
        super().__init__()
        self.params["weight"] = np.full(3, 2.0, dtype=np.float32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return self.params["weight"] * x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._cached()
        self.grads["weight"] = (dy * x).sum(axis=0).astype(self.params["weight"].dtype)
        return dy * self.params["weight"]


def _model() -> Sequential:
    """Nested: a Residual with a shortcut inside a Sequential, params and buffers at each level."""
    return Sequential(
        Dense(3, 4, rng=0),
        BatchNorm1D(4),
        Residual(Sequential(Dense(4, 2, rng=1), BatchNorm1D(2)), Sequential(Dense(4, 2, rng=2))),
        ReLU(),
    )


KEYS = [
    "0.weight", "0.bias",
    "1.weight", "1.bias", "1.running_mean", "1.running_var",
    "2.block.0.weight", "2.block.0.bias",
    "2.block.1.weight", "2.block.1.bias", "2.block.1.running_mean", "2.block.1.running_var",
    "2.shortcut.0.weight", "2.shortcut.0.bias",
]  # fmt: skip


def _run(model: Layer, rng: np.random.Generator) -> None:
    y = model.forward(rng.standard_normal((5, 3)).astype(model.dtype))
    model.backward(np.ones_like(y))


def test_train_eval_return_the_layer_and_recurse():
    model = _model()
    assert all(layer.training for _, layer in model.named_layers())
    assert model.eval() is model
    assert not any(layer.training for _, layer in model.named_layers())
    assert model.train() is model
    assert all(layer.training for _, layer in model.named_layers())
    assert model.train(False) is model and not model[2].shortcut[0].training


def test_astype_converts_params_grads_buffers_recursively(rng):
    model = _model()
    _run(model, rng)
    assert model.dtype == np.float32
    assert model.astype(np.float64) is model
    assert model.dtype == np.float64
    for prefix, layer in model.named_layers():
        for store in (layer.params, layer.grads, layer.buffers):
            for key, value in store.items():
                assert value.dtype == np.float64, prefix + key
    assert len([1 for _, layer in model.named_layers() for _ in layer.grads]) == 10
    _run(model, rng)  # still works in float64
    with pytest.raises(
        ValueError,
        match=r"Sequential\.astype: argument `dtype` must be a floating dtype\. "
        r"Received: dtype=dtype\('int32'\)",
    ):
        model.astype(np.int32)


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(
        CnnlabError,
        match=r"^_Scale: backward\(\) called before forward\(\); run forward\(x\) "
        r"first \(each forward caches what one backward needs\)$",
    ):
        _Scale().backward(np.ones((1, 3)))
    with pytest.raises(CnnlabError, match=r"ReLU: backward\(\) called before forward\(\)"):
        _model().backward(np.ones((5, 2)))


def test_parameters_are_handles_that_survive_astype(rng):
    model = _model()
    params = model.parameters()
    assert [p.path for p in params] == [k for k in KEYS if "running" not in k]
    assert all(isinstance(p, Param) for p in params)
    with pytest.raises(
        CnnlabError,
        match=r"Dense: no gradient for `weight` \(0\.weight\); call "
        r"model\.backward\(\.\.\.\) after model\.forward\(\.\.\.\)",
    ):
        params[0].grad  # noqa: B018
    model.astype(np.float64)
    _run(model, rng)
    for p in params:  # the handles see the new float64 arrays, not stale float32 copies
        assert p.value is p.layer.params[p.name] and p.value.dtype == np.float64
        assert p.grad is p.layer.grads[p.name] and p.grad.dtype == np.float64


def test_param_value_setter_writes_through():
    model = _model()
    param = model.parameters()[0]
    param.value = param.value - 1.0
    np.testing.assert_array_equal(model[0].params["weight"], param.value)


def test_state_dict_keys_and_copies():
    model = _model()
    state = model.state_dict()
    assert list(state) == KEYS
    state["0.weight"][...] = 123.0
    state["1.running_var"][...] = 123.0
    assert not np.any(model[0].params["weight"] == 123.0)
    assert not np.any(model[1].buffers["running_var"] == 123.0)


def test_load_state_dict_round_trip_keeps_dtype_and_copies():
    source, target = _model(), _model()
    for value in source.state_dict().values():
        assert value.dtype == np.float32
    state = {k: np.asarray(v, dtype=np.float64) + 1.0 for k, v in source.state_dict().items()}
    state["1.num_batches_tracked"] = np.array(3)  # PyTorch's counter is ignored
    target.load_state_dict(state)
    for key, value in target.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, state[key])
    state["0.weight"][...] = 0.0  # the model holds copies
    assert not np.all(target[0].params["weight"] == 0.0)


def _assert_unchanged(model: Layer, before: dict[str, np.ndarray]) -> None:
    after = model.state_dict()
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_load_state_dict_missing_and_unexpected_keys():
    model = _model()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items() if k != "2.shortcut.0.bias"}
    bad["2.shortcut.weight"] = np.zeros((2, 4))
    with pytest.raises(
        KeyError,
        match=r"Sequential\.load_state_dict: keys do not match the model\. "
        r"Missing: \['2\.shortcut\.0\.bias'\]\. Unexpected: \['2\.shortcut\.weight'\]\. "
        r"Expected keys: \['0\.weight', '0\.bias', ",
    ):
        model.load_state_dict(bad)
    _assert_unchanged(model, before)
    only_missing = {k: v for k, v in before.items() if k != "0.bias"}
    with pytest.raises(KeyError, match=r"Missing: \['0\.bias'\]\. Unexpected: none\."):
        model.load_state_dict(only_missing)
    _assert_unchanged(model, before)
    # strict=False loads what matches and ignores the rest
    partial = {"0.bias": before["0.bias"] + 1, "extra.weight": np.zeros(1)}
    model.load_state_dict(partial, strict=False)
    np.testing.assert_array_equal(model[0].params["bias"], before["0.bias"] + 1)
    np.testing.assert_array_equal(model[0].params["weight"], before["0.weight"])


def test_load_state_dict_wrong_shape_changes_nothing():
    model = _model()
    before = model.state_dict()
    bad = {k: v + 1 for k, v in before.items()}  # every earlier key is fine ...
    bad["2.block.1.running_var"] = np.ones(3)  # ... one late key is not
    with pytest.raises(
        ShapeError,
        match=r"Sequential\.load_state_dict: `2\.block\.1\.running_var` "
        r"\(BatchNorm1D\.running_var\) must have shape \(2,\)\. Received: shape \(3,\)",
    ):
        model.load_state_dict(bad)
    _assert_unchanged(model, before)  # validated before anything was copied: no half-load


def test_config_round_trip_nested_through_json(rng):
    model = Sequential(
        BatchNorm2D(3, momentum=0.2),
        Residual(Sequential(BatchNorm2D(3), ReLU()), BatchNorm2D(3, eps=1e-3)),
        Residual(ReLU()),
    )
    config = json.loads(json.dumps(to_config(model)))
    assert config["type"] == "Sequential"
    assert config["args"]["layers"][0] == {
        "type": "BatchNorm2D",
        "args": {"num_features": 3, "eps": 1e-5, "momentum": 0.2},
    }
    assert config["args"]["layers"][2]["args"]["shortcut"] is None
    rebuilt = from_config(config)
    assert to_config(rebuilt) == config
    assert repr(rebuilt) == repr(model)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    rebuilt.load_state_dict(model.state_dict())
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.forward(x), model.forward(x))


def test_from_config_errors():
    assert "BatchNorm2D" in LAYER_TYPES and "Residual" in LAYER_TYPES and "_Scale" not in LAYER_TYPES
    with pytest.raises(
        ValueError, match=r"unknown layer type 'Conv3D'\. Known types: .*BatchNorm1D, BatchNorm2D"
    ):
        from_config({"type": "Conv3D", "args": {}})
    with pytest.raises(ValueError, match=r"layer config must be a dict with a 'type' key\. Received: \[1\]"):
        from_config([1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"BatchNorm2D: bad arguments in config \{'channels': 3\}"):
        from_config({"type": "BatchNorm2D", "args": {"channels": 3}})
    with pytest.raises(ValueError, match=r"BatchNorm2D: argument `num_features` must be a positive int"):
        from_config({"type": "BatchNorm2D", "args": {"num_features": -1}})


def test_repr():
    assert repr(BatchNorm2D(16)) == "BatchNorm2D(16)"
    assert repr(BatchNorm2D(16, eps=1e-3)) == "BatchNorm2D(16, eps=0.001)"
    assert repr(ReLU()) == "ReLU()"
    assert repr(_model()) == (
        "Sequential(\n"
        "  (0): Dense(3, 4)\n"
        "  (1): BatchNorm1D(4)\n"
        "  (2): Residual(\n"
        "    (block): Sequential(\n"
        "      (0): Dense(4, 2)\n"
        "      (1): BatchNorm1D(2)\n"
        "    )\n"
        "    (shortcut): Sequential(\n"
        "      (0): Dense(4, 2)\n"
        "    )\n"
        "  )\n"
        "  (3): ReLU()\n"
        ")"
    )


def test_default_dtype_and_output_shape():
    assert _Scale().dtype == np.float32
    assert ReLU().dtype == np.float32  # no params: the default
    assert _Scale().output_shape((2, 3)) == (2, 3)  # the default is shape-preserving
    assert _Scale().formula((2, 3)) is None
    assert _model().output_shape((5, 3)) == (5, 2)
