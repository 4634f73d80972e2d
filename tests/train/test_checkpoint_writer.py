"""``CheckpointWriter``: an epoch counts as saved exactly when its file replaced the old one,
wherever a Ctrl-C lands (CI once saw "interrupted before the first epoch was saved" beside a
written checkpoint: the interrupt hit the bookkeeping after the write)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cnnlab.layers.dense import Dense
from cnnlab.train.loop import checkpoint
from cnnlab.train.loop.checkpoint import CheckpointWriter, TrainState, load_checkpoint


def state(epoch: int) -> TrainState:
    rows = [{"epoch": e, "loss": 1.0 / e} for e in range(1, epoch + 1)]
    return TrainState(epoch=epoch, history=rows, model=Dense(3, 2, rng=epoch).state_dict())


def interrupt_at(stage: str, epoch: int) -> Any:
    def hook(at_epoch: int, at_stage: str, f: Any) -> None:
        if (at_epoch, at_stage) == (epoch, stage):
            raise KeyboardInterrupt

    return hook


@pytest.mark.parametrize(("stage", "saved"), [("written", 1), ("saved", 2)])
def test_ctrl_c_in_the_second_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, saved: int
) -> None:
    """Inside the write ("written": the temp file is full, not in place) epoch 1 stays the last
    saved; after the replace ("saved") epoch 2 is saved although the call never returned."""
    path = tmp_path / "checkpoint.npz"
    writer = CheckpointWriter(path)
    writer(state(1))
    monkeypatch.setattr(checkpoint, "WRITE_HOOKS", [interrupt_at(stage, 2)])
    with pytest.raises(KeyboardInterrupt):
        writer(state(2))
    assert writer.saved_epoch == saved
    assert load_checkpoint(path, Dense(3, 2)).epoch == saved


def test_ctrl_c_inside_the_bookkeeping_after_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupt lands in the stat that settles the count: the next read settles it."""
    path = tmp_path / "checkpoint.npz"
    writer = CheckpointWriter(path)
    real = checkpoint._file_id
    calls = []

    def stat_then_interrupt(p: Path) -> Any:
        calls.append(p)
        if len(calls) == 2:  # 1: before the write, 2: settling after it
            raise KeyboardInterrupt
        return real(p)

    monkeypatch.setattr(checkpoint, "_file_id", stat_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        writer(state(1))
    assert path.is_file()
    assert writer.saved_epoch == 1


def test_a_resumed_run_starts_from_its_epoch_and_a_rank_that_does_not_write(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    assert CheckpointWriter(path, start_epoch=4).saved_epoch == 4
    other_rank = CheckpointWriter(path, is_main=False, start_epoch=4)
    other_rank(state(5))
    assert other_rank.saved_epoch == 5 and not path.exists()
