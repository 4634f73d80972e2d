"""fit + checkpoints in-process: stop anywhere, resume from the saved state, same bits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.data.transforms import parse_augment
from cnnlab.errors import CnnlabError
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.adam import Adam
from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau
from cnnlab.train.loop.callbacks import EarlyStopping
from cnnlab.train.loop.checkpoint import TrainState, load_checkpoint, save_checkpoint
from cnnlab.train.loop.fit import fit

EPOCHS = 4


def setup(schedule: str) -> tuple[Sequential, Adam, Any]:
    model = Sequential(
        Conv2D(1, 3, 3, padding=1, rng=1), BatchNorm2D(3), ReLU(), Flatten(),
        Dropout(0.3, rng=2), Dense(3 * 6 * 6, 3, rng=3),
    )  # fmt: skip
    optimizer = Adam(model.parameters(), lr=0.01)
    if schedule == "cosine":
        return model, optimizer, CosineWarmup(optimizer, total_epochs=EPOCHS, warmup_epochs=1)
    return model, optimizer, ReduceLROnPlateau(optimizer, factor=0.5, patience=0)


def run(schedule: str, **kwargs: Any) -> tuple[Sequential, Any]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model, optimizer, sched = setup(schedule)
    history = fit(
        model, SoftmaxCrossEntropy(), optimizer, (x, y), val_split=0.2, epochs=EPOCHS, batch_size=8,
        seed=5, schedule=sched, transform=parse_augment("shift,noise", (1, 6, 6)), verbose=False, **kwargs,
    )  # fmt: skip
    return model, history


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_resume_from_any_epoch_is_bit_identical(tmp_path: Path, schedule: str, stop_after: int) -> None:
    reference, ref_history = run(schedule)
    states: list[TrainState] = []
    run(schedule, checkpoint_fn=states.append)
    path = save_checkpoint(tmp_path / "checkpoint.npz", states[stop_after - 1])  # through the file

    model, optimizer, _ = setup(schedule)
    state = load_checkpoint(path, model, optimizer)
    assert state.epoch == stop_after and set(state.rngs) == {"split", "shuffle", "augment", "layer:4"}
    resumed, history = run(schedule, initial_state=state)
    for key, value in reference.state_dict().items():
        assert value.tobytes() == resumed.state_dict()[key].tobytes(), key
    assert [r["train_loss"] for r in history.rows] == [r["train_loss"] for r in ref_history.rows]


@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_keeps_early_stopping_state(tmp_path: Path, stop_after: int) -> None:
    # Random labels: validation loss soon rises, so EarlyStopping stops and restores an
    # earlier epoch's weights. A resumed run must stop at the same epoch with the same weights.
    make = lambda: EarlyStopping(monitor="val_loss", patience=2)  # noqa: E731
    reference_es = make()
    reference, ref_history = run("cosine", callbacks=[reference_es])
    assert reference_es.stopped_epoch > 0 and reference_es.best_epoch < len(ref_history)  # it did both
    assert stop_after < len(ref_history)

    states: list[TrainState] = []
    run("cosine", callbacks=[make()], checkpoint_fn=states.append)
    model, optimizer, _ = setup("cosine")
    path = save_checkpoint(tmp_path / "checkpoint.npz", states[stop_after - 1])
    state = load_checkpoint(path, model, optimizer)
    assert state.callbacks["0:EarlyStopping"]["best_epoch"] == min(stop_after, reference_es.best_epoch)

    resumed_es = make()
    resumed, history = run("cosine", callbacks=[resumed_es], initial_state=state)
    assert (resumed_es.best_epoch, resumed_es.stopped_epoch) == (
        reference_es.best_epoch,
        reference_es.stopped_epoch,
    )
    assert len(history) == len(ref_history)
    for key, value in reference.state_dict().items():
        assert value.tobytes() == resumed.state_dict()[key].tobytes(), key


def test_callback_state_for_an_unknown_weight_is_refused(tmp_path: Path) -> None:
    states: list[TrainState] = []
    run("cosine", callbacks=[EarlyStopping(monitor="val_loss", patience=1)], checkpoint_fn=states.append)
    arrays = states[0].callbacks["0:EarlyStopping"]["arrays"]
    arrays["9.weight"] = arrays.pop("0.weight")
    path = save_checkpoint(tmp_path / "checkpoint.npz", states[0])
    model, optimizer, _ = setup("cosine")
    with pytest.raises(
        CnnlabError, match=r"callback '0:EarlyStopping' keeps an array for unknown weight '9.weight'"
    ):
        load_checkpoint(path, model, optimizer)


def test_resume_of_a_finished_run_trains_no_more(tmp_path: Path) -> None:
    states: list[TrainState] = []
    reference, _ = run("cosine", checkpoint_fn=states.append)
    resumed, history = run("cosine", initial_state=states[-1])
    assert len(history) == EPOCHS
    for key, value in reference.state_dict().items():
        assert value.tobytes() == resumed.state_dict()[key].tobytes()


def test_checkpoint_file_is_plain_npz_without_pickle(tmp_path: Path) -> None:
    states: list[TrainState] = []
    run("cosine", checkpoint_fn=states.append)
    path = save_checkpoint(tmp_path / "checkpoint.npz", states[0])
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
        assert "optimizer/0.weight/exp_avg" in npz.files or any(
            k.startswith("optimizer/0.weight/") for k in npz.files
        )
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_random_stream_is_refused(tmp_path: Path) -> None:
    states: list[TrainState] = []
    run("cosine", checkpoint_fn=states.append)
    del states[0].rngs["layer:4"]
    with pytest.raises(
        CnnlabError, match=r"resume: the checkpoint has no state for the random stream\(s\) \['layer:4'\]"
    ):
        run("cosine", initial_state=states[0])
