"""StepLR, CosineWarmup and ReduceLROnPlateau against torch.optim.lr_scheduler and known values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cnnlab.layers.base import Layer
from cnnlab.optim import SGD, Adam, CosineWarmup, ReduceLROnPlateau, StepLR


class _Holder(Layer):
    def __init__(self) -> None:
        super().__init__()
        self.params["weight"] = np.zeros(2)


def _sgd(lr: float = 0.1) -> SGD:
    return SGD(_Holder().parameters(), lr=lr)


def _torch_opt(torch, lr: float = 0.1):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)


@pytest.mark.parametrize(("step_size", "gamma"), [(1, 0.5), (3, 0.1), (4, 0.9), (20, 0.1)])
def test_step_lr_matches_torch(torch, step_size, gamma):
    opt = _sgd(0.3)
    sched = StepLR(opt, step_size, gamma)
    ref_opt = _torch_opt(torch, 0.3)
    ref = torch.optim.lr_scheduler.StepLR(ref_opt, step_size, gamma)
    for _ in range(13):
        assert sched.get_lr() == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-14)
        ref_opt.step()
        sched.step()
        ref.step()


PLATEAU_CASES = [
    ({}, [1.0] * 25),
    ({"factor": 0.5, "patience": 2}, [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.7] + [0.7] * 8),
    ({"factor": 0.5, "patience": 0, "threshold": 0.1}, [1.0, 0.95, 0.85, 0.8, 0.5, 0.49, 0.3, 0.3]),
    ({"mode": "max", "factor": 0.2, "patience": 1}, [0.1, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.9, 0.4, 0.4]),
    ({"factor": 0.1, "patience": 1, "min_lr": 0.002}, [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]),
    ({"factor": 0.5, "patience": 1, "cooldown": 2}, [2.0] * 12),
    ({"patience": 1, "factor": 0.5}, [1.0, float("nan"), float("nan"), 0.5, float("nan"), -1.0, -1.0, -1.0]),
]


@pytest.mark.parametrize(("kwargs", "metrics"), PLATEAU_CASES)
def test_reduce_on_plateau_matches_torch(torch, kwargs, metrics):
    opt = _sgd(0.1)
    sched = ReduceLROnPlateau(opt, **kwargs)
    ref_opt = _torch_opt(torch, 0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, **kwargs)
    lrs, ref_lrs = [], []
    for value in metrics:
        ref_opt.step()
        sched.step(value)
        ref.step(value)
        lrs.append(sched.get_lr())
        ref_lrs.append(ref_opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, ref_lrs, rtol=1e-14)
    assert sched.num_bad_epochs == ref.num_bad_epochs


def test_cosine_warmup_known_values():
    opt = _sgd(1.0)
    sched = CosineWarmup(opt, total_epochs=6, warmup_epochs=2, min_lr=0.1)
    lrs = []
    for _ in range(8):
        lrs.append(opt.lr)
        sched.step()
    # warmup 1/3, 2/3; then 0.1 + 0.9 * (1 + cos(pi * k / 4)) / 2 for k = 0..4; then min_lr
    cos = [0.1 + 0.45 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    np.testing.assert_allclose(lrs, [1 / 3, 2 / 3, *cos, 0.1, 0.1], rtol=1e-15)
    assert lrs[2] == 1.0
    assert sched.lr_at(6) == pytest.approx(0.1, rel=1e-15)


def test_cosine_without_warmup_matches_torch_cosine_annealing(torch):
    opt = _sgd(0.2)
    sched = CosineWarmup(opt, total_epochs=10, min_lr=0.01)
    ref_opt = _torch_opt(torch, 0.2)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=10, eta_min=0.01)
    for _ in range(11):
        assert opt.lr == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        ref_opt.step()
        sched.step()
        ref.step()


def test_cosine_warmup_single_epoch():
    opt = _sgd(0.5)
    CosineWarmup(opt, total_epochs=1)
    assert opt.lr == 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, 2, 0.5),
        lambda o: CosineWarmup(o, total_epochs=9, warmup_epochs=3, min_lr=0.001),
        lambda o: ReduceLROnPlateau(o, factor=0.5, patience=1, cooldown=1),
    ],
)
def test_schedule_state_dict_round_trip(make):
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.95, 0.8, 0.8, 0.8, 0.8]

    def advance(sched, values):
        out = []
        for v in values:
            sched.step(v) if isinstance(sched, ReduceLROnPlateau) else sched.step()
            out.append(sched.get_lr())
        return out

    sched_a = make(_sgd(0.1))
    advance(sched_a, metrics[:4])
    saved = json.loads(json.dumps(sched_a.state_dict()))  # JSON round trip too
    expected = advance(sched_a, metrics[4:])
    opt_b = Adam(_Holder().parameters(), lr=0.1)
    sched_b = make(opt_b)
    sched_b.load_state_dict(saved)
    assert advance(sched_b, metrics[4:]) == expected


def test_schedule_load_errors():
    sched = StepLR(_sgd(), 2)
    with pytest.raises(ValueError, match="state is from 'CosineWarmup', not 'StepLR'"):
        sched.load_state_dict(CosineWarmup(_sgd(), 3).state_dict())
    with pytest.raises(KeyError, match=r"missing keys \['last_epoch'\]"):
        sched.load_state_dict({"type": "StepLR", "lr": 0.1, "base_lr": 0.1})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda o: StepLR(o, 0),
            r"StepLR: argument `step_size` must be a positive int. Received: step_size=0",
        ),
        (lambda o: StepLR(o, 2, gamma=0.0), r"argument `gamma` must be a positive float"),
        (lambda o: CosineWarmup(o, 0), r"argument `total_epochs` must be a positive int"),
        (
            lambda o: CosineWarmup(o, 5, warmup_epochs=5),
            r"`warmup_epochs` must be an int in \[0, total_epochs=5\)",
        ),
        (lambda o: CosineWarmup(o, 5, min_lr=1.0), r"`min_lr` must be a float in \[0, lr=0.1\]"),
        (lambda o: ReduceLROnPlateau(o, mode="best"), r"argument `mode` must be 'min' or 'max'"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), r"argument `factor` must be a float in \(0, 1\)"),
        (lambda o: ReduceLROnPlateau(o, patience=-1), r"argument `patience` must be a non-negative int"),
        (lambda o: ReduceLROnPlateau(o, threshold=-1), r"argument `threshold`"),
        (lambda o: StepLR(object(), 2), r"StepLR: argument `optimizer` must be a cnnlab Optimizer"),
    ],
)
def test_invalid_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(_sgd(0.1))
