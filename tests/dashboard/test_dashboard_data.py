"""Reading run folders: names that leave RUNS_DIR are refused; partial files never crash."""

from __future__ import annotations

import json
import os

import pytest

from cnnlab.dashboard.data import NotFound, RunsDir, read_history, read_json, run_details, run_summary


def make_run(folder, epochs=2, metrics=True):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"data": "digits", "model": "small", "epochs": 5, "lr": 0.01})
    )
    rows = "".join(f"{e},{1.0 / e},0.5,{1.1 / e},0.6,0.01,1.0\n" for e in range(1, epochs + 1))
    header = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"
    (folder / "history.csv").write_text(header + rows)
    if metrics:
        per_class = {"a": {"recall": 1.0}, "b": {"recall": 0.5}}
        (folder / "metrics.json").write_text(
            json.dumps({"test_accuracy": 0.75, "per_class": per_class, "confusion_matrix": [[2, 0], [1, 1]]})
        )
    return folder


@pytest.mark.parametrize(
    "name",
    ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "a//b", "./a", "a\\..\\..", "a\x00b", "", "C:/x"],
)
def test_names_that_leave_or_bend_the_root_are_not_found(tmp_path, name):
    runs = RunsDir(tmp_path / "runs")
    (tmp_path / "runs" / "a").mkdir(parents=True)
    with pytest.raises(NotFound):
        runs.resolve(name)


def test_symlinks_leading_out_are_not_found_and_not_listed(tmp_path):
    outside = make_run(tmp_path / "outside")
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "runs"
    make_run(root / "real")
    os.symlink(outside, root / "linked-run")
    os.symlink(outside / "secret.txt", root / "real" / "leak.txt")
    os.symlink(root / "real", root / "alias")  # inside the root: allowed
    runs = RunsDir(root)
    assert runs.runs() == ["alias", "real"]
    with pytest.raises(NotFound):
        runs.run("linked-run")
    with pytest.raises(NotFound):
        runs.resolve("real/leak.txt")
    assert runs.resolve("real/config.json").name == "config.json"


def test_runs_are_found_below_the_root_and_non_runs_refused(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "sweep" / "lr1")
    make_run(root / "b", metrics=False)
    (root / "empty").mkdir()
    runs = RunsDir(root)
    assert runs.runs() == ["b", "sweep/lr1"]
    with pytest.raises(NotFound):
        runs.run("empty")
    with pytest.raises(NotFound):
        runs.run("sweep")


def test_a_history_being_written_reads_its_complete_rows(tmp_path):
    path = tmp_path / "history.csv"
    header = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"
    path.write_text(header + "1,0.9,0.5,1.0,0.4,0.01,1.5\n2,0.8,0.6,0.9,0.")  # torn last line
    assert [r["epoch"] for r in read_history(path)] == [1.0]
    path.write_text(header + "1,0.9,0.5,,nan,0.01,1.5\n2,0.8\ngarbage,,,,,,\n")
    rows = read_history(path)
    assert rows == [
        {
            "epoch": 1.0,
            "train_loss": 0.9,
            "train_accuracy": 0.5,
            "val_loss": None,
            "val_accuracy": None,
            "lr": 0.01,
            "seconds": 1.5,
        }
    ]
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert read_history(path) == []
    assert read_history(tmp_path / "missing.csv") == []
    (tmp_path / "m.json").write_text('{"test_accuracy": 0.')
    assert read_json(tmp_path / "m.json") is None
    (tmp_path / "m.json").write_text("[1, 2]")
    assert read_json(tmp_path / "m.json") is None


def test_summary_and_details_of_a_run(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "done", epochs=3)
    make_run(root / "going", epochs=1, metrics=False)
    runs = RunsDir(root)
    done = run_summary(runs, "done")
    assert (done["status"], done["epochs_done"], done["epochs"], done["lr"]) == ("done", 3, 5, 0.01)
    assert done["best_val_accuracy"] == 0.6 and done["test_accuracy"] == 0.75
    assert run_summary(runs, "going")["status"] == "training"  # written just now, no metrics
    old = 1_000_000_000
    for f in (root / "going").iterdir():
        os.utime(f, (old, old))
    assert run_summary(runs, "going")["status"] == "stopped"
    details = run_details(runs, "done")
    assert details["evaluation"] == {
        "classes": ["a", "b"],
        "confusion_matrix": [[2, 0], [1, 1]],
        "per_class_accuracy": [1.0, 0.5],
    }
    assert [r["epoch"] for r in details["history"]] == [1.0, 2.0, 3.0]
    assert details["files"] == ["config.json", "history.csv", "metrics.json"]
    assert run_details(runs, "going")["evaluation"] is None
