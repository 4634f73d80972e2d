"""Callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, loggers) and History files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.layers.activations import ReLU
from cnnlab.layers.dense import Dense
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.sgd import SGD
from cnnlab.train.loop.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    ModelCheckpoint,
    ReduceLROnPlateau,
    ReduceLROnPlateauCallback,
    TrainContext,
)
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import History


def blobs(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(2 * n) % 2
    x = rng.normal(size=(2 * n, 1, 4, 4)) + np.where(y == 1, 0.5, -0.5)[:, None, None, None]
    return x.astype(np.float32), y


def tiny_model() -> Sequential:
    return Sequential(Flatten(), Dense(16, 8, rng=0), ReLU(), Dense(8, 2, rng=1))


class Snapshots(Callback):
    """Keeps the weights at the end of every epoch (put it before EarlyStopping)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, np.ndarray]] = {}

    def on_epoch_end(self, epoch, logs, ctx):
        self.states[epoch] = ctx.model.state_dict()


def same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def train(callbacks, epochs: int = 6, **kwargs):
    """Fit on blobs, validating on the same images with FLIPPED labels: val_loss only rises."""
    x, y = blobs()
    model = tiny_model()
    opt = SGD(model.parameters(), lr=0.2, momentum=0.9)
    history = fit(
        model,
        SoftmaxCrossEntropy(),
        opt,
        (x, y),
        val_data=(x, 1 - y),
        epochs=epochs,
        batch_size=16,
        callbacks=callbacks,
        verbose=False,
        **kwargs,
    )
    return model, opt, history


# ---- EarlyStopping -------------------------------------------------------------------------
def test_early_stopping_stops_and_restores_best_weights():
    snaps, stopper = Snapshots(), EarlyStopping(monitor="val_loss", patience=2)
    model, _, history = train([snaps, stopper], epochs=10)
    best = history.best_epoch("val_loss")
    assert stopper.best_epoch == best
    assert stopper.stopped_epoch == best + 2 == len(history) < 10
    assert same_weights(model.state_dict(), snaps.states[best])
    assert not same_weights(model.state_dict(), snaps.states[len(history)])


def test_early_stopping_restores_best_weights_at_a_normal_end_too():
    snaps, stopper = Snapshots(), EarlyStopping(patience=100)
    model, _, history = train([snaps, stopper], epochs=4)
    assert len(history) == 4 and stopper.stopped_epoch == 0
    assert same_weights(model.state_dict(), snaps.states[stopper.best_epoch])
    assert not same_weights(model.state_dict(), snaps.states[4])


def test_early_stopping_without_restore_keeps_last_weights():
    snaps = Snapshots()
    model, _, history = train([snaps, EarlyStopping(patience=1, restore_best_weights=False)])
    assert same_weights(model.state_dict(), snaps.states[len(history)])


def drive(callback: Callback, values: list[float], monitor: str = "val_loss", lr: float = 0.1):
    """Run a callback's hooks by hand with scripted metric values; weights = epoch number."""
    model = tiny_model()
    ctx = TrainContext(
        model=model, optimizer=SGD(model.parameters(), lr=lr), history=History(), epochs=len(values)
    )
    callback.on_train_begin(ctx)
    for epoch, value in enumerate(values, start=1):
        for p in model.parameters():
            p.value[...] = epoch
        callback.on_epoch_end(epoch, {"epoch": epoch, monitor: value}, ctx)
        if ctx.stop_training:
            break
    callback.on_train_end(ctx)
    return model, ctx


def test_early_stopping_modes_and_min_delta():
    stopper = EarlyStopping(monitor="val_accuracy", patience=2)  # auto -> max
    model, ctx = drive(stopper, [0.5, 0.7, 0.6, 0.65, 0.9], monitor="val_accuracy")
    assert ctx.stop_training and stopper.best_epoch == 2 and stopper.stopped_epoch == 4
    assert all((p.value == 2).all() for p in model.parameters())
    stopper = EarlyStopping(patience=1, min_delta=0.1)  # 0.95 is not better by 0.1
    drive(stopper, [1.0, 0.95, 0.5])
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 2


def test_early_stopping_errors():
    with pytest.raises(ValueError, match=r"EarlyStopping: argument `patience` must be an int >= 0"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match=r"argument `mode` must be one of .* Received: mode='best'"):
        EarlyStopping(mode="best")
    x, y = blobs()
    model = tiny_model()
    with pytest.raises(CnnlabError, match=r"`val_loss` is not available \(val_\* metrics need val_data"):
        fit(
            model,
            SoftmaxCrossEntropy(),
            SGD(model.parameters(), lr=0.1),
            (x, y),
            callbacks=[EarlyStopping()],
            verbose=False,
        )


# ---- ModelCheckpoint -----------------------------------------------------------------------
class FakeSave:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def __call__(self, model, path):
        self.calls.append((path.name, float(model.parameters()[0].value.flat[0])))


def test_checkpoint_best_only_saves_on_improvement():
    save = FakeSave()
    ckpt = ModelCheckpoint("ckpt-{epoch:02d}.npz", save_fn=save)
    drive(ckpt, [1.0, 0.8, 0.9, 0.7, 0.7])
    assert save.calls == [("ckpt-01.npz", 1.0), ("ckpt-02.npz", 2.0), ("ckpt-04.npz", 4.0)]
    assert ckpt.best == 0.7


def test_checkpoint_every_epoch():
    save = FakeSave()
    drive(ModelCheckpoint("last.npz", save_best_only=False, save_fn=save), [1.0, 2.0, 3.0])
    assert save.calls == [("last.npz", 1.0), ("last.npz", 2.0), ("last.npz", 3.0)]


def test_checkpoint_default_saves_with_cnnlab_io(tmp_path):
    io = pytest.importorskip("cnnlab.io")
    ckpt = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy")
    model, _, _ = train([ckpt], epochs=3)
    assert ckpt.saved[0].name == "best.npz"
    loaded = io.load(tmp_path / "best.npz")
    assert set(loaded.state_dict()) == set(model.state_dict())


# ---- ReduceLROnPlateau ---------------------------------------------------------------------
def test_reduce_lr_on_plateau_lowers_lr_down_to_min_lr():
    assert ReduceLROnPlateau is ReduceLROnPlateauCallback
    cb = ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02)
    _, ctx = drive(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], lr=0.1)
    assert cb.reductions == [(3, 0.05), (5, 0.025), (7, 0.02)]
    assert ctx.optimizer.lr == 0.02


def test_reduce_lr_on_plateau_in_fit_shows_in_history():
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=1)
    _, opt, history = train([cb], epochs=3)  # val_loss rises: epochs 2 and 3 reduce
    assert history.column("lr").tolist() == pytest.approx([0.2, 0.2, 0.02])
    assert opt.lr == pytest.approx(0.002)
    with pytest.raises(ValueError, match=r"argument `factor` must be a float in \(0, 1\)"):
        ReduceLROnPlateau(factor=1.5)


# ---- loggers and History files -------------------------------------------------------------
def test_csv_and_json_loggers_write_the_history_after_every_epoch(tmp_path):
    class Check(Callback):  # runs after the loggers: the files already hold this epoch
        def on_epoch_end(self, epoch, logs, ctx):
            assert len(History.from_csv(tmp_path / "h.csv")) == epoch
            assert len(json.loads((tmp_path / "h.json").read_text())["rows"]) == epoch

    x, y = blobs()
    model = tiny_model()
    loggers = [CSVLogger(tmp_path / "h.csv"), JSONLogger(tmp_path / "h.json"), Check()]
    history = fit(
        model,
        SoftmaxCrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=3,
        callbacks=loggers,
        verbose=False,
    )
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds"
    assert len(lines) == 4 and lines[1].startswith("1,") and ",,," in lines[1]  # no validation
    back = History.from_csv(tmp_path / "h.csv")
    np.testing.assert_array_equal(back.column("train_loss"), history.column("train_loss"))
    assert np.isnan(back.column("val_loss")).all()
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["rows"][2]["epoch"] == 3 and data["rows"][2]["val_loss"] is None
    assert data["rows"][2]["train_loss"] == history.rows[2]["train_loss"]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_history_round_trips_and_best_epoch(tmp_path):
    h = History()
    h.append(epoch=1, train_loss=0.9, train_accuracy=0.5, val_loss=0.8, val_accuracy=0.6, lr=0.1, seconds=1)
    h.append(epoch=2, train_loss=0.5, train_accuracy=0.8, val_loss=0.7, val_accuracy=0.7, lr=0.1, seconds=1)
    h.append(
        epoch=3, train_loss=0.3, train_accuracy=0.9, val_loss=math.nan, val_accuracy=0.9, lr=0.01, seconds=1
    )
    assert h.best_epoch("val_loss") == 2  # NaN rows are skipped
    assert h.best_epoch("val_accuracy") == 3 and h.best_epoch("train_loss", mode="max") == 1
    h.to_csv(tmp_path / "h.csv")
    h.to_json(tmp_path / "h.json")
    for back in (History.from_csv(tmp_path / "h.csv"), History.from_json(tmp_path / "h.json")):
        assert back.rows[:2] == h.rows[:2] and math.isnan(back.rows[2]["val_loss"])
    with pytest.raises(ValueError, match="argument `name` must be one of epoch"):
        h.column("loss")
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['loss'\]"):
        h.append(loss=1.0)
    with pytest.raises(ValueError, match="has no finite values"):
        History().best_epoch()
