"""A full disk never destroys a good report or plot (issue 23, item 1).

``cnnlab plot RUN`` on a disk with a few KB free replaced a good ``report.html`` with a
truncated one and said only ``[Errno 28] No space left on device``. Every file viz/ writes
is now written atomically (``cnnlab.atomic``); the error names the file. The injected error
always runs; a real tiny tmpfs runs where this process may mount one (root).
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.viz.figure import new_figure, save
from cnnlab.viz.report import write_report

pytest.importorskip("matplotlib")

HISTORY = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n" + "".join(
    f"{e},{2.0 / e},{0.5 + e / 20},{2.2 / e},{0.45 + e / 20},0.01,1.0\n" for e in range(1, 6)
)


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    """A run folder with a history, a model and a good report.html (and its plots)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "history.csv").write_text(HISTORY)
    model = cnnlab.Sequential(cnnlab.Conv2D(1, 4, 3, rng=0), cnnlab.Flatten(), cnnlab.Dense(144, 3, rng=0))
    cnnlab.save(model, folder / "model.npz", extra={"input_shape": [1, 8, 8]})
    write_report(folder)
    return folder


def full_disk_after(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """Make every ``os.fdopen`` file in ``cnnlab.atomic`` fail with ENOSPC after ``budget`` bytes."""
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd: int) -> None:
            self.file = real_fdopen(fd, "wb")
            self.left = budget

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            data = bytes(data)
            if len(data) > self.left:
                self.file.write(data[: self.left])  # a partial write, as on a real full disk
                self.left = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= len(data)
            return self.file.write(data)

        def fileno(self) -> int:
            return self.file.fileno()

        def flush(self) -> None:
            self.file.flush()

        def close(self) -> None:
            super().close()  # flushes first
            self.file.close()

    monkeypatch.setattr("cnnlab.atomic.os.fdopen", lambda fd, mode="wb": FullDisk(fd))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


def test_a_full_disk_keeps_the_old_report_and_names_it(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run / "report.html"
    before = report.read_bytes()
    assert len(before) > 20_000  # the curves are inlined
    full_disk_after(monkeypatch, 4096)
    with pytest.raises(OSError, match=re.escape(f"No space left on device: {str(report)!r}")) as info:
        write_report(run, make_plots=False)
    assert info.value.errno == errno.ENOSPC
    assert report.read_bytes() == before
    assert leftovers(run) == []


def test_a_full_disk_keeps_the_old_plot_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plots" / "learning_curves.png"
    fig = new_figure(300, 200)
    fig.add_subplot(1, 1, 1).plot(np.arange(10))
    save(fig, path)
    before = path.read_bytes()
    full_disk_after(monkeypatch, 100)
    with pytest.raises(OSError, match=re.escape(f"No space left on device: {str(path)!r}")):
        save(fig, path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_cnnlab_plot_on_a_full_disk_says_which_file(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run / "report.html"
    plots = {p.name: p.read_bytes() for p in (run / "plots").iterdir()}
    before = report.read_bytes()
    full_disk_after(monkeypatch, 1000)
    assert main(["plot", str(run), "--no-tsne"]) == 1
    err = capsys.readouterr().err
    assert f"No space left on device: '{run / 'plots'}" in err, err
    assert report.read_bytes() == before
    assert {p.name: p.read_bytes() for p in (run / "plots").iterdir()} == plots


def test_a_real_tiny_tmpfs_keeps_the_old_report(run: Path, tmp_path: Path) -> None:
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        copy = mnt / "run"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("plots", "report.html"))
        report = copy / "report.html"
        write_report(copy, make_plots=False)  # a good report without pictures (small)
        before = report.read_bytes()
        shutil.copytree(run / "plots", copy / "plots")  # new pictures: the next report is larger
        needed = len((run / "report.html").read_bytes())
        assert needed > len(before) + 20_000
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * max(0, shutil.disk_usage(mnt).free - needed // 2))  # half of it fits
        with pytest.raises(OSError, match=re.escape(f"No space left on device: {str(report)!r}")):
            write_report(copy, make_plots=False)
        assert report.read_bytes() == before
        assert leftovers(copy) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
