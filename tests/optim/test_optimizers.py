"""SGD, Adam and AdamW against torch.optim, state round trips, in-place updates, errors."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.layers.base import Layer
from cnnlab.layers.sequential import Sequential
from cnnlab.optim import SGD, Adam, AdamW, Optimizer, make_optimizer


class _Holder(Layer):
    """A fake layer that only holds parameters (the optimizer tests feed the grads)."""

    def __init__(self, **arrays: np.ndarray) -> None:
        super().__init__()
        self.params.update({k: np.array(v) for k, v in arrays.items()})


class _Linear(Layer):
    """A tiny bias-free linear layer ``y = x W^T`` with its backward, for real training steps."""

    def __init__(self, weight: np.ndarray) -> None:
        super().__init__()
        self.params["weight"] = np.array(weight)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return x @ self.params["weight"].T  # (N, out)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._cached()
        self.grads["weight"] = dy.T @ x  # (out, in)
        return dy @ self.params["weight"]  # (N, in)


def _model(rng: np.random.Generator, dtype: type = np.float64) -> Sequential:
    return Sequential(
        _Holder(weight=rng.standard_normal((3, 4)).astype(dtype), bias=rng.standard_normal(3).astype(dtype)),
        _Holder(weight=rng.standard_normal((2, 3)).astype(dtype)),
    )


def _make(name: str, params: list, kwargs: dict) -> Optimizer:
    return {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}[name](params, **kwargs)


CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.0, 0.5)}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.03, "betas": (0.5, 0.9), "eps": 1e-7, "weight_decay": 0.2}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_matches_torch_over_steps(torch, name, kwargs):
    rng = np.random.default_rng(0)
    model = _model(rng)
    params = model.parameters()
    tensors = [torch.tensor(p.value.copy(), dtype=torch.float64, requires_grad=True) for p in params]
    opt = _make(name, params, kwargs)
    ref = getattr(torch.optim, name)(tensors, **kwargs)
    for step in range(8):
        if step == 4:  # a schedule changing lr between steps
            opt.lr *= 0.5
            ref.param_groups[0]["lr"] *= 0.5
        for p, t in zip(params, tensors, strict=True):
            g = rng.standard_normal(p.value.shape)
            p.layer.grads[p.name] = g
            t.grad = torch.tensor(g.copy())
        opt.step()
        ref.step()
        for p, t in zip(params, tensors, strict=True):
            np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=p.path)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_float32_stays_float32_and_matches_torch(torch, name):
    rng = np.random.default_rng(1)
    model = _model(rng, np.float32)
    params = model.parameters()
    kwargs = {"lr": 0.01, "weight_decay": 0.1} | ({"momentum": 0.9} if name == "SGD" else {})
    tensors = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt = _make(name, params, kwargs)
    ref = getattr(torch.optim, name)(tensors, **kwargs)
    for _ in range(5):
        for p, t in zip(params, tensors, strict=True):
            g = rng.standard_normal(p.value.shape).astype(np.float32)
            p.layer.grads[p.name] = g
            t.grad = torch.tensor(g.copy())
        opt.step()
        ref.step()
    for p, t in zip(params, tensors, strict=True):
        assert p.value.dtype == np.float32
        assert all(buf.dtype == np.float32 for buf in opt.state[p.path].values())
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), CASES[2:], ids=[f"{n}-{k}" for n, k in CASES[2:]])
def test_state_dict_round_trip_then_identical_steps(name, kwargs):
    rng = np.random.default_rng(2)
    grads = [[rng.standard_normal(s) for s in ((3, 4), (3,), (2, 3))] for _ in range(6)]
    model_a = _model(np.random.default_rng(3))
    opt_a = _make(name, model_a.parameters(), kwargs)

    def feed(model: Sequential, i: int) -> None:
        for p, g in zip(model.parameters(), grads[i], strict=True):
            p.layer.grads[p.name] = g

    for i in range(3):
        feed(model_a, i)
        opt_a.step()
    saved = opt_a.state_dict()
    scalars = {k: v for k, v in saved.items() if k != "state"}
    json.dumps(scalars)  # everything but the arrays is JSON-able
    assert saved["t"] == 3 and saved["type"] == name
    # The saved arrays are copies: later steps do not change them.
    first_buffer = next(iter(saved["state"]["0.weight"].values())).copy()

    model_b = _model(np.random.default_rng(99))
    model_b.load_state_dict(model_a.state_dict())
    opt_b = _make(name, model_b.parameters(), {**kwargs, "lr": 123.0})
    opt_b.load_state_dict(saved)
    assert opt_b.lr == opt_a.lr and opt_b.t == 3
    for i in range(3, 6):
        feed(model_a, i)
        feed(model_b, i)
        opt_a.step()
        opt_b.step()
    for key, value in model_a.state_dict().items():
        np.testing.assert_array_equal(model_b.state_dict()[key], value)
    np.testing.assert_array_equal(next(iter(saved["state"]["0.weight"].values())), first_buffer)


def test_state_dict_restores_settings():
    model = _model(np.random.default_rng(0))
    saved = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01).state_dict()
    other = SGD(model.parameters(), lr=0.5, momentum=0.5)
    other.load_state_dict(saved)
    assert (other.lr, other.momentum, other.nesterov, other.weight_decay) == (0.1, 0.9, True, 0.01)
    adam = Adam(model.parameters(), betas=(0.5, 0.6))
    adam.load_state_dict(Adam(model.parameters(), betas=(0.8, 0.9)).state_dict())
    assert adam.betas == (0.8, 0.9)


def test_load_state_dict_errors_leave_state_unchanged():
    model = _model(np.random.default_rng(0))
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    good = opt.state_dict()
    with pytest.raises(ValueError, match="from a Adam optimizer, not SGD"):
        opt.load_state_dict(Adam(model.parameters()).state_dict())
    with pytest.raises(ValueError, match=r"missing keys \['t'\]"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "t"})
    missing = {**good, "state": {k: v for k, v in good["state"].items() if k != "1.weight"}}
    with pytest.raises(KeyError, match=r"Missing: \['1.weight'\]. Unexpected: none"):
        opt.load_state_dict(missing)
    renamed = {**good, "state": {**good["state"], "0.bias": {"exp_avg": np.zeros(3)}}}
    with pytest.raises(KeyError, match=r"`0.bias` must have buffers \['momentum_buffer'\]"):
        opt.load_state_dict(renamed)
    wrong_shape = {**good, "lr": 7.0, "state": {**good["state"], "0.bias": {"momentum_buffer": np.zeros(4)}}}
    with pytest.raises(
        ShapeError, match=r"`0.bias` momentum_buffer must have shape \(3,\). Received: shape \(4,\)"
    ):
        opt.load_state_dict(wrong_shape)
    with pytest.raises(ValueError, match=r"argument `momentum` must be a float in \[0, 1\)"):
        opt.load_state_dict({**good, "hparams": {**good["hparams"], "momentum": -1.0}})
    assert opt.lr == 0.1 and opt.t == 0 and opt.momentum == 0.9


def test_updates_in_place_and_zero_grad_is_a_no_op():
    layer = _Holder(weight=np.ones((2, 2)))
    alias = layer.params["weight"]
    opt = SGD(layer.parameters(), lr=0.5, momentum=0.9)
    layer.grads["weight"] = np.full((2, 2), 2.0)
    grad_before = layer.grads["weight"].copy()
    opt.zero_grad()
    opt.step()
    assert layer.params["weight"] is alias
    np.testing.assert_array_equal(alias, np.zeros((2, 2)))
    np.testing.assert_array_equal(layer.grads["weight"], grad_before)  # grads are never modified


def test_follows_astype_after_construction():
    layer = _Holder(weight=np.ones(3, dtype=np.float32))
    opt = Adam(layer.parameters(), lr=0.1)
    layer.grads["weight"] = np.ones(3, dtype=np.float32)
    opt.step()
    layer.astype(np.float64)
    layer.grads["weight"] = np.ones(3)
    opt.step()
    assert layer.params["weight"].dtype == np.float64
    assert opt.state["weight"]["exp_avg"].dtype == np.float64


def test_step_without_gradient_raises_clear_error():
    opt = SGD(_Holder(weight=np.ones(2)).parameters(), lr=0.1)
    with pytest.raises(CnnlabError, match="no gradient for `weight`"):
        opt.step()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("SGD", {"momentum": 0.9, "nesterov": True}), ("SGD", {"momentum": 0.9}), ("Adam", {}), ("AdamW", {})],
)
def test_steps_allocate_no_param_sized_temporaries(name, kwargs):
    layer = _Holder(weight=np.zeros(250_000))  # 2 MB
    layer.grads["weight"] = np.ones(250_000)
    opt = _make(name, layer.parameters(), {"lr": 0.1, **kwargs})
    opt.step()  # the first step creates the state and the work buffer
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000, f"{name} step allocated {peak} bytes"


def test_training_a_tiny_model_matches_torch_and_learns(torch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 4))
    w_true = rng.standard_normal((2, 4))
    y = x @ w_true.T
    layer = _Linear(rng.standard_normal((2, 4)) * 0.1)
    model = Sequential(layer)
    w_t = torch.tensor(layer.params["weight"].copy(), requires_grad=True)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    ref = torch.optim.SGD([w_t], lr=0.1, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(60):
        pred = model.forward(x)
        losses.append(float(np.mean((pred - y) ** 2)))
        opt.zero_grad()
        model.backward(2.0 * (pred - y) / pred.size)  # dMSE/dpred
        opt.step()
        ref.zero_grad()
        torch.mean((torch.tensor(x) @ w_t.T - torch.tensor(y)) ** 2).backward()
        ref.step()
    np.testing.assert_allclose(layer.params["weight"], w_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert losses[-1] < 0.01 * losses[0]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (SGD, {"lr": -0.1}, r"SGD: argument `lr` must be a positive finite float. Received: lr=-0.1"),
        (SGD, {"lr": 0.1, "momentum": -0.5}, r"argument `momentum` must be a float in \[0, 1\)"),
        (SGD, {"lr": 0.1, "nesterov": True}, r"argument `nesterov` must be False when momentum=0"),
        (SGD, {"lr": 0.1, "weight_decay": -1.0}, r"argument `weight_decay` must be a non-negative"),
        (Adam, {"betas": (0.9, 1.0)}, r"Adam: argument `betas` must be a pair .* in \[0, 1\)"),
        (AdamW, {"betas": (-0.1, 0.9)}, r"AdamW: argument `betas`"),
        (Adam, {"betas": (0.9,)}, r"argument `betas`"),
        (Adam, {"eps": -1e-8}, r"argument `eps` must be a positive finite float"),
        (AdamW, {"lr": float("nan")}, r"AdamW: argument `lr`"),
    ],
)
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(_Holder(weight=np.ones(2)).parameters(), **kwargs)


# Impossible values (issue 15): each refused with the option, the range and what was given.
@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (
            SGD,
            {"lr": 0.1, "momentum": 5},
            r"^SGD: argument `momentum` must be a float in \[0, 1\). Received: momentum=5$",
        ),
        (SGD, {"lr": 0.1, "momentum": 1.0}, r"momentum=1.0$"),
        (SGD, {"lr": 0.1, "momentum": float("nan")}, r"`momentum` must be a float in \[0, 1\)"),
        (
            SGD,
            {"lr": 0.1, "momentum": "0.9"},
            r"`momentum` must be a float in \[0, 1\). Received: momentum='0.9'",
        ),
        (SGD, {"lr": 0.0}, r"^SGD: argument `lr` must be a positive finite float. Received: lr=0.0$"),
        (SGD, {"lr": float("inf")}, r"`lr` must be a positive finite float. Received: lr=inf"),
        (Adam, {"lr": -1e-3}, r"^Adam: argument `lr` must be a positive finite float"),
        (SGD, {"lr": 0.1, "weight_decay": float("inf")}, r"`weight_decay` must be a non-negative float"),
        (AdamW, {"weight_decay": -0.01}, r"^AdamW: argument `weight_decay` must be a non-negative float"),
        (
            Adam,
            {"betas": (1.5, 0.999)},
            r"`betas` must be a pair .* in \[0, 1\). Received: betas=\(1.5, 0.999\)",
        ),
        (Adam, {"betas": (0.9, float("nan"))}, r"`betas` must be a pair"),
        (Adam, {"eps": 0.0}, r"^Adam: argument `eps` must be a positive finite float. Received: eps=0.0$"),
    ],
)
def test_impossible_values_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(_Holder(weight=np.ones(2)).parameters(), **kwargs)


def test_a_schedule_may_end_at_lr_zero_and_its_state_still_loads():
    params = _Holder(weight=np.ones(2)).parameters()
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.lr = 0.0  # where a cosine schedule ends
    again = SGD(params, lr=0.5, momentum=0.5)
    again.load_state_dict(opt.state_dict())
    assert (again.lr, again.momentum) == (0.0, 0.9)


def test_invalid_params():
    with pytest.raises(ValueError, match="argument `params` must be a non-empty list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"argument `params\[0\]` must be a Param"):
        SGD([np.ones(2)], lr=0.1)  # type: ignore[list-item]
    params = _Holder(weight=np.ones(2)).parameters()
    with pytest.raises(ValueError, match="handles with unique paths"):
        SGD(params + params, lr=0.1)


def test_make_optimizer():
    params = _model(np.random.default_rng(0)).parameters()
    sgd = make_optimizer("SGD", params, lr=0.1, weight_decay=0.01, momentum=0.5)
    assert isinstance(sgd, SGD) and (sgd.momentum, sgd.weight_decay) == (0.5, 0.01)
    adam = make_optimizer("adam", params, lr=0.01)
    assert type(adam) is Adam and adam.weight_decay == 0.0 and adam.lr == 0.01
    adamw = make_optimizer("adamw", params, lr=0.01, weight_decay=0.05)
    assert type(adamw) is AdamW and adamw.weight_decay == 0.05
    with pytest.raises(ValueError, match=r"unknown optimizer 'rmsprop'. Valid names: sgd, adam, adamw"):
        make_optimizer("rmsprop", params, lr=0.1)


def test_repr():
    opt = Adam(_Holder(weight=np.ones(2)).parameters(), lr=0.01)
    assert repr(opt) == "Adam(1 params, lr=0.01, betas=[0.9, 0.999], eps=1e-08, weight_decay=0.0)"
