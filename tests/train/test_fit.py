"""fit(): the loop learns, is bit-for-bit reproducible, splits stratified, guards NaN."""

from __future__ import annotations

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
from cnnlab.train.loop.callbacks import Callback
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import COLUMNS, History


def blobs(n0: int = 40, n1: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes of 1x4x4 images: mean -0.5 (class 0) and +0.5 (class 1)."""
    rng = np.random.default_rng(seed)
    y = np.array([0] * n0 + [1] * n1)
    x = rng.normal(size=(n0 + n1, 1, 4, 4)) + np.where(y == 1, 0.5, -0.5)[:, None, None, None]
    return x.astype(np.float32), y


def tiny_model(seed: int = 0) -> Sequential:
    return Sequential(Flatten(), Dense(16, 8, rng=seed), ReLU(), Dense(8, 2, rng=seed + 1))


def run(seed: int = 0, **kwargs):
    model = tiny_model()
    opt = SGD(model.parameters(), lr=kwargs.pop("lr", 0.1), momentum=0.9)
    kwargs.setdefault("verbose", False)
    history = fit(model, SoftmaxCrossEntropy(), opt, blobs(), seed=seed, batch_size=16, **kwargs)
    return model, history


def test_training_reduces_loss():
    _, history = run(epochs=6)
    loss = history.column("train_loss")
    assert len(history) == 6
    assert loss[-1] < 0.5 * loss[0]
    assert history.column("train_accuracy")[-1] > 0.9
    assert history.column("epoch").tolist() == [1, 2, 3, 4, 5, 6]
    assert np.isnan(history.column("val_loss")).all()  # no validation asked for


def noise(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return xb + rng.normal(scale=0.1, size=xb.shape).astype(xb.dtype)


def test_same_seed_gives_identical_history_and_weights():
    m1, h1 = run(seed=7, epochs=3, val_split=0.25, transform=noise)
    m2, h2 = run(seed=7, epochs=3, val_split=0.25, transform=noise)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in h1.rows]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in h2.rows]
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
    # A different seed shuffles differently: the run changes.
    _, h3 = run(seed=8, epochs=3, val_split=0.25, transform=noise)
    assert h3.column("train_loss").tolist() != h1.column("train_loss").tolist()


class SpyLoss(SoftmaxCrossEntropy):
    """Records the labels the loss sees in training and in evaluation mode."""

    def __init__(self, model: Sequential) -> None:
        super().__init__()
        self.model = model
        self.seen: dict[bool, list[np.ndarray]] = {True: [], False: []}

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        self.seen[self.model.training].append(np.asarray(targets))
        return super().forward(logits, targets)


def split_labels(seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = blobs(n0=60, n1=20)
    model = tiny_model()
    loss = SpyLoss(model)
    fit(
        model,
        loss,
        SGD(model.parameters(), lr=0.05),
        (x, y),
        val_split=0.25,
        epochs=1,
        batch_size=8,
        seed=seed,
        verbose=False,
    )
    return np.concatenate(loss.seen[True]), np.concatenate(loss.seen[False])


def test_val_split_is_stratified_and_seeded():
    train_y, val_y = split_labels(seed=0)
    assert len(val_y) == 20 and len(train_y) == 60
    assert np.bincount(val_y).tolist() == [15, 5]  # 3:1, like the whole set
    assert np.bincount(train_y).tolist() == [45, 15]


def test_a_batch_larger_than_the_training_part_is_warned_of():
    # 400 examples, 10% held out: 360 train; a batch of 1000 is one step per epoch
    x, y = blobs(200, 200)
    model = tiny_model()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.warns(
        UserWarning, match=r"batch_size=1000 is more than the 360 training examples.*\(2 in all\)"
    ):
        fit(
            model, SoftmaxCrossEntropy(), opt, (x, y), batch_size=1000, epochs=2, val_split=0.1, verbose=False
        )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the whole set as one batch is a choice, and a tiny set is one batch anyway
        fit(model, SoftmaxCrossEntropy(), opt, (x, y), batch_size=400, epochs=1, verbose=False)
        fit(model, SoftmaxCrossEntropy(), opt, blobs(), batch_size=100, epochs=1, verbose=False)


def test_a_validation_part_larger_than_the_training_part_is_warned_of():
    x, y = blobs()
    model = tiny_model()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.warns(UserWarning, match=r"val_split=0.9 holds out 72 of the 80 examples .* trains on 8;"):
        fit(model, SoftmaxCrossEntropy(), opt, (x, y), batch_size=8, epochs=1, val_split=0.9, verbose=False)


def test_validation_columns_filled_with_val_data():
    x, y = blobs(seed=1)
    _, history = run(epochs=2, val_data=(x, y))
    assert np.isfinite(history.column("val_loss")).all()
    assert (history.column("val_accuracy") > 0.5).all()
    assert list(history.rows[0]) == list(COLUMNS)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="argument `val_split` must be 0 when val_data is given"):
        run(val_split=0.2, val_data=blobs())
    with pytest.raises(ValueError, match=r"argument `epochs` must be a positive int. Received: epochs=0"):
        run(epochs=0)
    with pytest.raises(ValueError, match="argument `train_data` must be an"):
        fit(tiny_model(), SoftmaxCrossEntropy(), None, blobs()[0], verbose=False)


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.states: dict[int, dict[str, np.ndarray]] = {}

    def on_train_begin(self, ctx):
        self.events.append("train_begin")

    def on_epoch_begin(self, epoch, ctx):
        self.events.append(f"epoch_begin {epoch}")

    def on_batch_end(self, batch, logs, ctx):
        self.events.append("batch")

    def on_epoch_end(self, epoch, logs, ctx):
        self.events.append(f"epoch_end {epoch}")
        self.states[epoch] = ctx.model.state_dict()

    def on_train_end(self, ctx):
        self.events.append("train_end")


def test_callback_hooks_run_in_order():
    rec = Recorder()
    run(epochs=2, callbacks=[rec])  # 80 samples / 16 = 5 batches
    batches = ["batch"] * 5
    assert rec.events == [
        "train_begin",
        *["epoch_begin 1", *batches, "epoch_end 1"],
        *["epoch_begin 2", *batches, "epoch_end 2"],
        "train_end",
    ]


class NanAfter(SoftmaxCrossEntropy):
    """Returns NaN from the ``n``-th training forward on (a diverging run, made certain)."""

    def __init__(self, model: Sequential, n: int) -> None:
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, logits, targets):
        value = super().forward(logits, targets)
        if self.model.training:
            self.calls += 1
            if self.calls >= self.n:
                return math.nan
        return value


def test_nan_loss_restores_last_good_weights_and_raises_with_advice():
    model, rec = tiny_model(), Recorder()
    opt = SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDiverged, match=r"Advice: lower the learning rate, e\.g\. --lr 0\.01") as info:
        fit(
            model, NanAfter(model, n=8), opt, blobs(), epochs=5, batch_size=16, callbacks=[rec], verbose=False
        )  # 5 batches per epoch: NaN in epoch 2, batch 2
    exc = info.value
    assert isinstance(exc, CnnlabError)
    assert (exc.epoch, exc.batch) == (2, 2)
    assert "epoch 2, batch 2" in str(exc) and "end of epoch 1 were restored" in str(exc)
    assert isinstance(exc.history, History) and len(exc.history) == 1
    state = model.state_dict()
    assert all(np.array_equal(state[k], rec.states[1][k]) for k in state)
    assert "train_end" not in rec.events


def test_nan_in_first_epoch_restores_initial_weights():
    model = tiny_model()
    initial = model.state_dict()
    with pytest.raises(TrainingDiverged, match="initial weights"):
        fit(
            model,
            NanAfter(model, n=3),
            SGD(model.parameters(), lr=0.1),
            blobs(),
            batch_size=16,
            verbose=False,
        )
    assert all(np.array_equal(v, initial[k]) for k, v in model.state_dict().items())


class PerEpoch:
    def __init__(self, opt):
        self.opt, self.calls = opt, 0

    def step(self):
        self.calls += 1
        self.opt.lr *= 0.5


class OnMetric:
    def __init__(self):
        self.metrics = []

    def step(self, metric):
        self.metrics.append(metric)


def test_schedules_step_once_per_epoch_with_val_loss_when_they_take_a_metric():
    model = tiny_model()
    opt = SGD(model.parameters(), lr=0.1)
    sched = PerEpoch(opt)
    h = fit(model, SoftmaxCrossEntropy(), opt, blobs(), epochs=3, schedule=sched, verbose=False)
    assert sched.calls == 3
    assert h.column("lr").tolist() == [0.1, 0.05, 0.025]  # the rate each epoch used
    plateau = OnMetric()
    h = fit(
        model, SoftmaxCrossEntropy(), opt, blobs(), val_split=0.25, epochs=2, schedule=plateau, verbose=False
    )
    assert plateau.metrics == h.column("val_loss").tolist()
    plateau = OnMetric()
    h = fit(model, SoftmaxCrossEntropy(), opt, blobs(), epochs=2, schedule=plateau, verbose=False)
    assert plateau.metrics == h.column("train_loss").tolist()  # no validation: train loss


def test_quiet_mode_prints_nothing(capsys):
    run(epochs=2)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_without_a_terminal_prints_one_line_per_epoch(capsys):
    run(epochs=3, val_split=0.25, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3  loss ")
    assert "val_loss" in lines[0] and "img/s" in lines[0]


def test_live_bar_in_a_terminal_leaves_one_summary_line_per_epoch(capsys, monkeypatch):
    pytest.importorskip("rich")
    from cnnlab.train.loop import progress

    monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: True)
    assert isinstance(progress.make_progress(True, 2), progress.RichProgress)
    progress.make_progress(True, 2).close()
    run(epochs=2, verbose=True)
    out = capsys.readouterr().out
    assert "epoch 1/2  loss" in out and "epoch 2/2  loss" in out


def test_real_cnn_with_real_schedules():
    from cnnlab.layers.conv import Conv2D
    from cnnlab.layers.dropout import Dropout
    from cnnlab.layers.pooling import MaxPool2D
    from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau

    def cnn() -> Sequential:
        return Sequential(
            Conv2D(1, 4, kernel_size=3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(),
            Dropout(0.2, rng=0), Dense(16, 2, rng=1),
        )  # fmt: skip

    model = cnn()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    plateau = ReduceLROnPlateau(opt, factor=0.5, patience=0)  # step(metric): gets val_loss
    h = fit(model, SoftmaxCrossEntropy(), opt, blobs(), val_split=0.25, epochs=4, batch_size=16,
            schedule=plateau, verbose=False)  # fmt: skip
    assert h.column("train_loss")[-1] < h.column("train_loss")[0]
    model = cnn()
    opt = SGD(model.parameters(), lr=0.1)
    cosine = CosineWarmup(opt, total_epochs=3, warmup_epochs=1)  # step(): once per epoch
    h = fit(model, SoftmaxCrossEntropy(), opt, blobs(), epochs=3, schedule=cosine, verbose=False)
    lr = h.column("lr")
    assert lr[0] < lr[1] > lr[2]  # warm up, then decay
