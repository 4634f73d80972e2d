"""A resumed run's history.csv is rebuilt from its checkpoint (issue 23 item 10).

An emptied history.csv in a finished run: `--resume` said all epochs were done, then
`diagnose: the history is empty`, exit 1. The checkpoint holds every epoch's row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.train.loop.history import History, restore_csv

TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")
QUICK = ["--model", TINY, "--batch-size", "64", "--quiet", "--no-plots"]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    "damage", ["", "epoch,train_loss\n", "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"]
)
def test_a_finished_run_with_an_emptied_history_is_rebuilt_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "2", "--out", str(run)]) == 0
    good = rows_of(run / "history.csv")
    assert len(good) == 2
    (run / "history.csv").write_text(damage)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet", "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "had finished (all 2 epochs are done)" in captured.err
    assert "history.csv did not match checkpoint.npz: rebuilt from its 2 epoch(s)" in captured.err
    assert "history is empty" not in captured.err + captured.out
    assert "diagnosis: " in captured.out
    assert rows_of(run / "history.csv") == good  # the same rows, bit for bit
    assert main(["diagnose", str(run)]) == 0


def test_restore_csv_leaves_a_matching_file_alone(tmp_path: Path) -> None:
    rows = [{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "lr": 0.1, "seconds": 1.0}]
    path = tmp_path / "history.csv"
    assert restore_csv(path, rows) is True
    before = path.stat().st_mtime_ns
    assert restore_csv(path, rows) is False and path.stat().st_mtime_ns == before
    assert History.from_csv(path).rows == History(rows).rows
