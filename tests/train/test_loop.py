"""The one training loop under both engines: every loop-level behaviour, NumPy and PyTorch.

History, callbacks, progress, divergence (NaN and finite), Ctrl-C, early stopping, and
checkpoint/resume with every stateful callback and the plateau schedule are the loop's, so
each test runs with ``backend="numpy"`` and ``backend="torch"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.data.transforms import parse_augment
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.adam import Adam
from cnnlab.optim.schedules import ReduceLROnPlateau
from cnnlab.optim.sgd import SGD
from cnnlab.train.loop.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateauCallback
from cnnlab.train.loop.checkpoint import TrainState, load_checkpoint, save_checkpoint
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import COLUMNS


@pytest.fixture(params=["numpy", "torch"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "torch":
        request.getfixturevalue("torch")  # torch is the oracle: never skipped in CI
    return str(request.param)


def data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 1x8x8 images, each brighter in its own band of rows (learnable)."""
    gen = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = gen.normal(size=(n, 1, 8, 8))
    for k in range(3):
        x[y == k, :, 2 * k : 2 * k + 3, :] += 1.0
    return x.astype(np.float32), y


def model(batch_norm: bool = True, dropout: bool = True) -> Sequential:
    layers: list[Any] = [Conv2D(1, 4, 3, padding=1, rng=1)]
    layers += [BatchNorm2D(4)] if batch_norm else []
    layers += [ReLU(), MaxPool2D(2), Flatten()]
    layers += [Dropout(0.2, rng=2)] if dropout else []
    return Sequential(*layers, Dense(4 * 4 * 4, 3, rng=3))


def train(backend: str, net: Sequential | None = None, optimizer: Any = None, **kwargs: Any) -> Any:
    net = net if net is not None else model()
    optimizer = optimizer if optimizer is not None else Adam(net.parameters(), lr=0.01)
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("seed", 3)
    return net, fit(net, SoftmaxCrossEntropy(), optimizer, data(), backend=backend, **kwargs)


def same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a
    )


def without_seconds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


class Recorder(Callback):
    """Records the hooks, each epoch's weights and the first batch's loss."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.states: dict[int, dict[str, np.ndarray]] = {}
        self.losses: list[float] = []

    def on_train_begin(self, ctx: Any) -> None:
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch: int, ctx: Any) -> None:
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch: int, logs: dict[str, Any], ctx: Any) -> None:
        self.events.append("batch")
        self.losses.append(logs["loss"])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: Any) -> None:
        self.events.append(f"epoch_end {epoch}")
        self.states[epoch] = ctx.model.state_dict()

    def on_train_end(self, ctx: Any) -> None:
        self.events.append("train_end")


class SetLR(Callback):
    """Sets the learning rate at the start of ``epoch`` (a run made to diverge there)."""

    def __init__(self, epoch: int, lr: float) -> None:
        self.epoch, self.lr = epoch, lr

    def on_epoch_begin(self, epoch: int, ctx: Any) -> None:
        if epoch == self.epoch:
            ctx.optimizer.lr = self.lr


def test_both_engines_see_the_same_batches_in_the_same_order(torch: Any) -> None:
    seen: dict[str, list[bytes]] = {"numpy": [], "torch": []}
    shift = parse_augment("shift", (1, 8, 8))
    for name, batches in seen.items():

        def spy(xb: np.ndarray, rng: np.random.Generator, batches: list[bytes] = batches) -> np.ndarray:
            out = shift(xb, rng)
            batches.append(out.tobytes())
            return out

        train(name, val_split=0.25, epochs=2, transform=spy)
    assert len(seen["numpy"]) == 10  # 72 training images in batches of 16, twice
    assert seen["numpy"] == seen["torch"]


def test_history_has_one_row_per_epoch_with_the_rate_each_used(backend: str) -> None:
    net = model()
    optimizer = SGD(net.parameters(), lr=0.1, momentum=0.9)
    schedule = ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=10.0)  # halves each epoch
    _, history = train(backend, net, optimizer, val_split=0.25, epochs=3, schedule=schedule)
    assert [list(row) for row in history.rows] == [list(COLUMNS)] * 3
    assert history.column("epoch").tolist() == [1, 2, 3]
    assert history.column("lr").tolist() == [0.1, 0.05, 0.025]
    assert np.isfinite(history.column("val_loss")).all()
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]


def test_callback_hooks_run_in_order(backend: str) -> None:
    rec = Recorder()
    train(backend, epochs=2, callbacks=[rec])  # 96 images / 16 = 6 batches
    batches = ["batch"] * 6
    assert rec.events == [
        "train_begin",
        *["epoch_begin 1", *batches, "epoch_end 1"],
        *["epoch_begin 2", *batches, "epoch_end 2"],
        "train_end",
    ]


def test_progress_prints_one_line_per_epoch_or_nothing(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    train(backend, epochs=2)
    assert capsys.readouterr() == ("", "")
    train(backend, epochs=2, val_split=0.25, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line[:16] for line in lines] == ["epoch 1/2  loss ", "epoch 2/2  loss "]
    assert all("val_loss" in line and "img/s" in line for line in lines)


def nan_at(call: int) -> Any:
    """A transform that puts a NaN into the ``call``-th training batch (from 0)."""
    calls = [0]

    def transform(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        calls[0] += 1
        if calls[0] - 1 == call:
            xb = xb.copy()
            xb[0, 0, 0, 0] = np.nan
        return xb

    return transform


def test_nan_loss_restores_the_last_good_epoch(backend: str) -> None:
    rec, states = Recorder(), []
    net = model()
    with pytest.raises(
        TrainingDiverged, match=r"the loss became nan in epoch 2, batch 1 .*contain no NaN"
    ) as info:
        train(backend, net, epochs=3, callbacks=[rec], transform=nan_at(7), checkpoint_fn=states.append)
    assert len(info.value.history) == 1 and len(states) == 1
    assert same_bits(net.state_dict(), rec.states[1]) and same_bits(net.state_dict(), states[0].model)
    assert "train_end" not in rec.events


def test_a_finite_loss_far_above_its_start_is_divergence(backend: str) -> None:
    """Adam at lr 1e8 with BatchNorm: the loss stays finite (1e9 and up), never NaN."""
    rec, states = Recorder(), []
    net = model()
    with pytest.raises(TrainingDiverged) as info:
        train(backend, net, epochs=3, callbacks=[SetLR(2, 1e8), rec], checkpoint_fn=states.append)
    message = str(info.value)
    assert message.startswith("training diverged: the mean training loss of epoch 2 rose to ")
    assert "more than 100 times where it started" in message and "(lr=1e+08)" in message
    assert "The weights from the end of epoch 1 were restored. Advice: lower the learning rate" in message
    assert (info.value.epoch, info.value.batch) == (2, -1) and len(info.value.history) == 1
    assert all(math.isfinite(v) for v in rec.losses) and max(rec.losses) > 1e6  # finite, but huge
    assert same_bits(net.state_dict(), rec.states[1]) and len(states) == 1


TINY_BN = {
    "layers": [
        {"Conv2D": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        {"BatchNorm2D": {}},
        "ReLU",
        {"MaxPool2D": {"kernel_size": 2}},
        "Flatten",
        {"Dense": {"out_features": "num_classes"}},
    ]
}


def test_the_cli_at_lr_1e8_stops_with_one_clear_error(backend: str, tmp_path: Path, capsys: Any) -> None:
    """Issue 15: `cnnlab train --lr 1e8` (Adam + BatchNorm) exited 0 at loss 2.5e25."""
    from cnnlab.cli.main import main
    from cnnlab.io import load
    from cnnlab.models import model_from_file

    arch, out = tmp_path / "tiny_bn.json", tmp_path / "run"
    arch.write_text(json.dumps(TINY_BN))
    args = ["train", "--model", str(arch), "--lr", "1e8", "--epochs", "2", "--batch-size", "64"]
    code = main([*args, "--backend", backend, "--quiet", "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(
        "cnnlab train: error: training diverged: the mean training loss of epoch 1 rose to"
    )
    assert "The weights from before training (the initial weights) were restored." in lines[0]
    assert not (out / "metrics.json").exists()  # no test accuracy reported as if it were a result
    initial = model_from_file(str(arch), 1, (8, 8), 10, rng=np.random.default_rng(0))  # as train builds it
    assert same_bits(load(out / "model.npz").state_dict(), initial.state_dict())


def test_a_healthy_run_whose_loss_rises_at_first_does_not_trip(backend: str) -> None:
    """Adam at lr 0.5 without BatchNorm: epoch 1's loss rises above its start, then it learns."""
    rec = Recorder()
    net = model(batch_norm=False, dropout=False)
    _, history = train(backend, net, Adam(net.parameters(), lr=0.5), epochs=4, callbacks=[rec])
    start = max(math.log(3), rec.losses[0])
    assert history.column("train_loss")[0] > 1.5 * start  # a real rise ...
    assert history.column("train_accuracy")[-1] > 0.6  # ... in a run that learns (chance: 1/3)


class InterruptAt(Callback):
    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, batch: int, logs: dict[str, Any], ctx: Any) -> None:
        if ctx.epoch == self.epoch and batch == self.batch:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_weights_of_the_last_finished_epoch(backend: str) -> None:
    rec = Recorder()
    net = model()
    with pytest.raises(KeyboardInterrupt):
        train(backend, net, epochs=3, callbacks=[rec, InterruptAt(2, 3)])
    assert same_bits(net.state_dict(), rec.states[1])


def test_early_stopping_stops_and_restores_the_best_weights(backend: str) -> None:
    rec = Recorder()
    stopper = EarlyStopping(monitor="val_loss", patience=1, min_delta=100.0)  # only epoch 1 improves
    net, history = train(backend, epochs=5, val_split=0.25, callbacks=[rec, stopper])
    assert len(history) == 2 and (stopper.best_epoch, stopper.stopped_epoch) == (1, 2)
    assert same_bits(net.state_dict(), rec.states[1])


EPOCHS = 8


def resumable_run(
    backend: str, folder: Path, checkpoint: Path | None = None, states: list[TrainState] | None = None
) -> tuple[Sequential, Any, list[Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    net = model()
    optimizer = Adam(net.parameters(), lr=0.02)
    schedule = ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.05)
    callbacks = [
        EarlyStopping(monitor="val_loss", patience=2, min_delta=0.01),
        ReduceLROnPlateauCallback(monitor="val_accuracy", factor=0.5, patience=1),
        ModelCheckpoint(folder / "best-{epoch}.npz", monitor="val_loss"),
    ]
    initial_state = load_checkpoint(checkpoint, net, optimizer) if checkpoint is not None else None
    _, history = train(
        backend, net, optimizer, epochs=EPOCHS, val_split=0.25, schedule=schedule, callbacks=callbacks,
        transform=parse_augment("shift,noise", (1, 8, 8)), initial_state=initial_state,
        checkpoint_fn=None if states is None else states.append,
    )  # fmt: skip
    return net, history, [optimizer.state_dict(), schedule.state_dict(), *callbacks]


def test_resume_from_every_epoch_ends_bit_identical(backend: str, tmp_path: Path) -> None:
    """With EarlyStopping, the plateau schedule and callback and ModelCheckpoint: a resume
    from any epoch's checkpoint file ends with the same History, weights and callback state."""
    states: list[TrainState] = []
    net, history, (opt, sched, stopper, plateau, best) = resumable_run(
        backend, tmp_path / "whole", None, states
    )
    print(
        backend,
        stopper.stopped_epoch,
        stopper.best_epoch,
        plateau.reductions,
        sched,
        [p.name for p in best.saved],
    )
    assert 0 < stopper.stopped_epoch < EPOCHS and plateau.reductions and sched["lr"] < 0.02  # all at work
    for state in states[:-1]:
        path = save_checkpoint(tmp_path / "checkpoint.npz", state)
        folder = tmp_path / f"from-{state.epoch}"
        net2, history2, (opt2, sched2, stopper2, plateau2, best2) = resumable_run(backend, folder, path)
        assert without_seconds(history2.rows) == without_seconds(history.rows), state.epoch
        assert same_bits(net2.state_dict(), net.state_dict()), state.epoch
        assert sched2 == sched and opt2["lr"] == opt["lr"] and opt2["t"] == opt["t"]
        assert (stopper2.best_epoch, stopper2.stopped_epoch) == (stopper.best_epoch, stopper.stopped_epoch)
        assert plateau2.reductions == plateau.reductions
        after = [p.name for p in best.saved if int(p.stem.split("-")[1]) > state.epoch]
        assert [p.name for p in best2.saved] == after  # never a worse "best" after the resume


def test_resume_finds_each_callbacks_state_by_class_when_one_is_added_in_front(backend: str) -> None:
    def stopper() -> EarlyStopping:
        return EarlyStopping(monitor="val_loss", patience=1, min_delta=100.0)  # only epoch 1 improves

    states: list[TrainState] = []
    whole, history = train(
        backend, epochs=4, val_split=0.25, callbacks=[stopper()], checkpoint_fn=states.append
    )
    assert len(history) == 2  # stopped after epoch 2, back at epoch 1's weights
    net = model()
    _, resumed = train(backend, net, epochs=4, val_split=0.25, callbacks=[Recorder(), stopper()],
                       initial_state=states[0])  # fmt: skip
    assert without_seconds(resumed.rows) == without_seconds(history.rows)
    assert same_bits(net.state_dict(), whole.state_dict())
