"""A full disk during `cnnlab train` (issue 23 item 1, the training part).

Every file train writes into a run folder goes through ``cnnlab.atomic``: a failed write
(an injected ENOSPC) names the file and leaves the old one in place. Before writing
anything, train compares the disk's free space with what the run will need.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_run import cli
from cnnlab.train.loop.checkpoint import HEADER_KEY
from cnnlab.train.runs.disk import PLOTS_MARGIN, check_disk_space, needed_bytes

TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")
QUICK = ["--model", TINY, "--batch-size", "64", "--quiet", "--no-plots"]
REAL_FSYNC = os.fsync


def full_disk_for(monkeypatch: pytest.MonkeyPatch, name: str, nth: int = 1) -> list[int]:
    """From the ``nth`` atomic write of a file called ``name`` on, its fsync fails with ENOSPC."""
    seen = [0]

    def fsync(fd: int) -> None:
        target = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if target.startswith(f".{name}.") and target.endswith(".tmp"):
            seen[0] += 1
            if seen[0] >= nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def temp_files(run: Path) -> list[str]:
    return sorted(p.name for p in run.glob(".*.tmp"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")


@needs_proc
@pytest.mark.parametrize("name", ["history.csv", "checkpoint.npz"])
def test_a_full_disk_in_epoch_2_names_the_file_and_keeps_epoch_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    run = tmp_path / "run"
    full_disk_for(monkeypatch, name, nth=2)
    code, err = cli(capsys, "train", *QUICK, "--epochs", "2", "--out", str(run))
    assert code == 1
    assert "No space left on device" in err and str(run / name) in err, err
    assert temp_files(run) == []
    monkeypatch.undo()
    if name == "history.csv":
        assert len((run / name).read_text().splitlines()) == 2  # the header and epoch 1
    else:
        with np.load(run / name) as f:
            assert json.loads(f[HEADER_KEY].tobytes())["epoch"] == 1
        # and the run resumes from it
        code, err = cli(capsys, "train", "--resume", str(run), "--quiet", "--no-plots")
        assert code == 0, err


@needs_proc
@pytest.mark.parametrize("name", ["config.json", "model.npz", "metrics.json"])
def test_a_full_disk_on_resume_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    run = tmp_path / "run"
    code, err = cli(capsys, "train", *QUICK, "--epochs", "1", "--out", str(run))
    assert code == 0, err
    before = (run / name).read_bytes()
    full_disk_for(monkeypatch, name)
    code, err = cli(capsys, "train", "--resume", str(run), "--quiet", "--no-plots")
    assert code == 1
    assert "No space left on device" in err and str(run / name) in err, err
    assert (run / name).read_bytes() == before
    assert temp_files(run) == []


class Usage:
    def __init__(self, free: int) -> None:
        self.total, self.used, self.free = 2 * free + 1, free + 1, free


def test_train_refuses_a_disk_without_room_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(68 * 1024))  # the 68 KB
    run = tmp_path / "run"
    code, err = cli(capsys, "train", *QUICK, "--epochs", "1", "--out", str(run))
    assert code == 1
    assert (
        f"train: not enough free disk space for the run folder {run}: 0.1 MiB free on the disk of {tmp_path}"
        in err
    )
    assert "needed (model.npz " in err and "nothing was written" in err
    assert not run.exists()


def test_the_estimate_counts_weights_optimizer_buffers_and_plots() -> None:
    import cnnlab

    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(100, 10, rng=0))  # 1010 float32 weights
    adam = cnnlab.Adam(model.parameters(), lr=1e-3)
    need, parts = needed_bytes(model, adam)
    weights = 1010 * 4
    assert parts["model.npz"] == weights
    assert parts["checkpoint.npz and its temporary copy"] == 2 * weights * (1 + len(adam.buffer_names()))
    assert need == sum(parts.values()) and parts["plots, report and logs"] == PLOTS_MARGIN


def test_exactly_enough_room_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab

    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(4, 2, rng=0))
    sgd = cnnlab.SGD(model.parameters(), lr=0.1)
    need, _ = needed_bytes(model, sgd)
    free: dict[str, Any] = {"n": need}
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(free["n"]))
    assert check_disk_space(tmp_path / "new" / "run", model, sgd) == need
    free["n"] = need - 1
    with pytest.raises(Exception, match="not enough free disk space"):
        check_disk_space(tmp_path / "new" / "run", model, sgd)
