"""The engine's floating-point error state (issue 15): overflow in any hot spot is an inf/NaN
in the result, never a RuntimeWarning; a caller's stricter ``np.errstate`` still wins, also in
the conv worker threads; and a diverging run's CLI error is one line, in any test order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import utils as threads_mod
from cnnlab.cli.main import main
from cnnlab.functional.fpstate import quiet_fp, quiet_fp_method
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import MSELoss, SoftmaxCrossEntropy
from cnnlab.optim import SGD, Adam
from cnnlab.train.evaluation.evaluate import evaluate_arrays

TINY = str(Path(__file__).parents[1] / "reliability" / "tiny.json")
BIG = np.float32(3e38)  # float32 max is 3.4e38: any sum or product of two of these overflows


def huge(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    x = np.clip(rng.standard_normal(shape), -1, 1).astype(np.float32) * BIG  # finite, huge
    x.flat[0] = np.inf  # and one inf: inf - inf, 0 * inf are "invalid" operations
    return x


@pytest.fixture
def no_warnings():
    """Every warning is an error inside the test (as a user's terminal would show it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


LAYERS = {
    "Dense": (lambda: Dense(64, 5, rng=0), (8, 64)),
    "Conv2D": (lambda: Conv2D(3, 4, 3, padding=1, rng=0), (2, 3, 6, 6)),
    "BatchNorm2D": (lambda: BatchNorm2D(3), (4, 3, 5, 5)),
    "BatchNorm1D": (lambda: BatchNorm1D(6), (4, 6)),
    "Sigmoid": (Sigmoid, (4, 6)),
    "Tanh": (Tanh, (4, 6)),
    "ReLU": (ReLU, (4, 6)),
    "LeakyReLU": (LeakyReLU, (4, 6)),
    "ELU": (ELU, (4, 6)),
    "Maxout": (lambda: Maxout(2), (4, 6, 2, 2)),
    "Softmax": (Softmax, (4, 6)),
    "Dropout": (lambda: Dropout(0.5, rng=0), (4, 6)),
    "AvgPool2D": (lambda: AvgPool2D(2), (2, 3, 4, 4)),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 3, 4, 4)),
    "GlobalAvgPool2D": (GlobalAvgPool2D, (2, 3, 4, 4)),
    "Residual": (
        lambda: Residual(Sequential(Conv2D(3, 3, 3, padding=1, rng=0), BatchNorm2D(3))),
        (2, 3, 4, 4),
    ),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layers_overflow_to_inf_or_nan_without_warnings(
    name: str, rng: np.random.Generator, no_warnings
) -> None:
    make, shape = LAYERS[name]
    layer = make()
    x = huge(shape, rng)
    y = layer.forward(x)
    dx = layer.backward(huge(y.shape, rng))
    assert y.shape[0] == shape[0] and dx.shape == x.shape


def test_losses_and_optimizers_overflow_without_warnings(rng: np.random.Generator, no_warnings) -> None:
    logits = huge((4, 3), rng)
    ce = SoftmaxCrossEntropy()
    assert not np.isfinite(ce.forward(logits, np.array([0, 1, 2, 0])))
    assert not np.isfinite(ce.backward()).all()
    mse = MSELoss()
    assert mse.forward(huge((4, 3), rng), -huge((4, 3), rng)) == np.inf
    mse.backward()
    for make in (lambda p: SGD(p, lr=10.0, momentum=0.9), lambda p: Adam(p, lr=1e8)):
        layer = Dense(4, 3, rng=0)
        layer.params["weight"][:] = BIG
        layer.grads = {"weight": huge((3, 4), rng), "bias": huge((3,), rng)}
        opt = make(layer.parameters())
        opt.step()
        opt.step()
        assert not np.isfinite(layer.params["weight"]).all()


def test_a_diverged_model_is_evaluated_without_warnings(rng: np.random.Generator, no_warnings) -> None:
    net = Sequential(Flatten(), Dense(16, 3, rng=0))
    net.layers[1].params["weight"][:] = BIG
    metrics = evaluate_arrays(net, huge((6, 1, 4, 4), rng), np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_a_callers_stricter_state_is_kept(rng: np.random.Generator) -> None:
    # The stability tests rely on this: np.errstate(over="raise") must still raise inside a layer.
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        Dense(64, 5, rng=0).forward(np.full((2, 64), BIG))
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        Sequential(Dense(64, 5, rng=0)).forward(np.full((2, 64), BIG))
    assert np.geterr()["over"] == "warn"  # and the default comes back afterwards
    with quiet_fp():
        assert np.geterr()["over"] == "ignore"
        with quiet_fp():  # nested: no new state
            assert np.geterr()["over"] == "ignore"
    assert np.geterr()["over"] == "warn"


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch):
    """split_channels on 4 threads whatever the machine (small jobs too)."""
    monkeypatch.setattr(threads_mod, "_THREADS", 4)
    monkeypatch.setattr(threads_mod, "_POOL", None)
    yield
    if threads_mod._POOL is not None:
        threads_mod._POOL[1].shutdown()


def test_worker_threads_run_under_the_callers_error_state(threads) -> None:
    seen: dict[int, tuple[str, str]] = {}

    def part(c0: int, c1: int) -> None:
        seen[c0] = (np.geterr()["over"], threading.current_thread().name)

    with np.errstate(over="raise"):
        threads_mod.split_channels(part, 8, work=2**20)
    assert sorted(seen) == [0, 2, 4, 6]
    assert {mode for mode, _ in seen.values()} == {"raise"}
    assert sum(name.startswith("cnnlab-conv") for _, name in seen.values()) == 3
    seen.clear()
    with quiet_fp():
        threads_mod.split_channels(part, 8, work=2**20)
    assert {mode for mode, _ in seen.values()} == {"ignore"}


def test_conv_and_batchnorm_on_threads_overflow_without_warnings(rng, threads, no_warnings) -> None:
    x = huge((16, 8, 32, 32), rng)  # 131,072 elements: split over the 4 threads
    net = Sequential(Conv2D(8, 8, 3, padding=1, bias=False, rng=0), BatchNorm2D(8), ReLU())
    y = net.forward(x)
    net.backward(huge(y.shape, rng))
    assert not np.isfinite(y).all()


def test_no_work_is_left_running_when_the_callers_part_fails(threads) -> None:
    done: list[int] = []

    def part(c0: int, c1: int) -> None:
        if c0 == 6:  # the caller's own part
            raise RuntimeError("boom")
        threading.Event().wait(0.05)
        done.append(c0)

    with pytest.raises(RuntimeError, match="boom"):
        threads_mod.split_channels(part, 8, work=2**20)
    assert sorted(done) == [0, 2, 4]  # the workers had finished before the error came out


def test_quiet_fp_method_wraps_transparently() -> None:
    assert Dense.forward.__name__ == "forward" and Dense.forward.__wrapped__ is not None  # type: ignore[attr-defined]
    assert quiet_fp_method(divmod)(7, 2) == (3, 1)


# ---- the CLI ----------------------------------------------------------------------------------
ARGS = ["train", "--model", TINY, "--optimizer", "sgd", "--lr", "1000", "--epochs", "2", "--batch-size", "64",
        "--schedule", "none", "--quiet", "--no-plots"]  # fmt: skip


def test_diverging_cli_run_under_warnings_as_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Independent of pytest's warning capture and of test order: a RuntimeWarning would be an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main([*ARGS, "--out", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("cnnlab train: error: training diverged: the loss became nan")


def test_diverging_cli_run_in_a_terminal_prints_one_line(tmp_path: Path) -> None:
    # A fresh process, as a user runs it: no pytest warning capture at all.
    src = str(Path(cnnlab.__file__).parents[1])  # the cnnlab under test
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *ARGS, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": src, "PYTHONWARNINGS": ""},
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("cnnlab train: error: training diverged: the loss became nan"), proc.stderr
