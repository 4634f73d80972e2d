"""A run folder is never damaged: locked while written, never mixed, untouched by a failed start.

Issue 15, part 1. The races are real processes (`python -m cnnlab train`) with a tiny model
on the embedded digits, about a second each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from checkpoint_faults import fault_env
from cli_run import cli
from cnnlab.cli.main import main
from cnnlab.train.runs.files import LOCK_FILE

TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")
SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
QUICK = ["--epochs", "1", "--batch-size", "64", "--quiet", "--no-plots"]


def other_tiny(tmp_path: Path) -> str:
    """A second tiny architecture (6 channels instead of 4), to tell two runs apart."""
    path = tmp_path / "tiny6.json"
    spec = json.loads(Path(TINY).read_text())
    spec["layers"][0]["Conv2D"]["out_channels"] = 6
    path.write_text(json.dumps(spec))
    return str(path)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def start(args: list[str], slow: float = 0.0) -> subprocess.Popen[str]:
    env = fault_env(ENV, slow=slow) if slow else ENV
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def conv_channels(run_dir: Path) -> tuple[int, int]:
    """Conv channels according to config.json's model file and to model.npz's weights."""
    config = json.loads((run_dir / "config.json").read_text())
    spec = json.loads(Path(config["model"]).read_text())
    with np.load(run_dir / "model.npz", allow_pickle=False) as npz:
        weight = next(npz[k] for k in npz.files if k.endswith("weight") and npz[k].ndim == 4)
    return spec["layers"][0]["Conv2D"]["out_channels"], weight.shape[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with plots/ and report.html (copy it before changing it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--model", TINY, "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    assert (out / "report.html").is_file() and (out / "plots").is_dir()
    return out


# ---- two runs, one folder ------------------------------------------------------------------
def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "same"
    first = start(["--model", TINY, "--out", str(out), *QUICK, "--epochs", "3"], slow=0.5)
    deadline = time.monotonic() + 60
    while not (out / "config.json").exists():  # the first run is writing its folder
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)
    second = start(["--model", other_tiny(tmp_path), "--out", str(out), *QUICK])
    _, err = second.communicate(timeout=120)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert err.strip().splitlines() == [
        f"cnnlab train: error: {out} is in use by another cnnlab run (PID {first.pid}): two runs "
        "writing one folder would mix their files. Wait for that run to finish, or choose another "
        f"--out. (Lock file: {out / LOCK_FILE})"
    ]
    assert conv_channels(out) == (4, 4)  # config and model of the first run, no mix
    assert not (out / LOCK_FILE).exists()


def test_two_runs_started_together_never_mix_their_files(tmp_path: Path) -> None:
    out = tmp_path / "same"
    runs = {
        4: start(["--model", TINY, "--out", str(out), *QUICK]),
        6: start(["--model", other_tiny(tmp_path), "--out", str(out), *QUICK]),
    }
    results = {channels: (proc, *proc.communicate(timeout=120)) for channels, proc in runs.items()}
    codes = sorted(proc.returncode for proc, _, _ in results.values())
    assert codes == [0, 1], {c: err for c, (_, _, err) in results.items()}
    winner = next(c for c, (proc, _, _) in results.items() if proc.returncode == 0)
    loser_err = next(err for proc, _, err in results.values() if proc.returncode == 1)
    assert "is in use by another cnnlab run (PID" in loser_err or "already holds a run" in loser_err, (
        loser_err
    )
    assert conv_channels(out) == (winner, winner)
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0  # resumable


def test_a_killed_runs_lock_is_taken_over_with_a_notice(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = start(["--model", TINY, "--out", str(out), *QUICK, "--epochs", "3"], slow=5)
    deadline = time.monotonic() + 60
    while not list(out.glob(".checkpoint.npz.*.tmp")):  # inside its first checkpoint write
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)
    first.kill()
    first.communicate()
    assert (out / LOCK_FILE).read_text() == f"{first.pid}\n"  # SIGKILL: no cleanup ran
    resumed = start(["--resume", str(out), "--quiet", "--no-plots"])
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert err.strip().splitlines() == [
        f"cnnlab: taking over the stale lock of {out}: its holder, PID {first.pid}, has ended"
    ]
    assert not (out / LOCK_FILE).exists()


# ---- a folder that holds a run ----------------------------------------------------------------
def test_training_into_a_finished_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "done"
    assert cli(capsys, "train", "--model", TINY, "--out", str(out), *QUICK)[0] == 0
    before = snapshot(out)
    code, err = cli(capsys, "train", "--model", "small", "--out", str(out), *QUICK)
    assert code == 1
    assert err.strip().splitlines() == [
        f"cnnlab train: error: {out} already holds a run (config.json, checkpoint.npz, model.npz, "
        f"history.csv, metrics.json). To continue it: cnnlab train --resume {out}; to replace it (its "
        "files, plots/ and report.html are deleted): add --overwrite; or choose another --out"
    ]
    assert snapshot(out) == before


def test_overwrite_replaces_the_whole_run_plots_and_report_included(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], finished_run: Path
) -> None:
    out = shutil.copytree(finished_run, tmp_path / "run")
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    code, err = cli(
        capsys, "train", "--model", other_tiny(tmp_path), "--out", str(out), *QUICK, "--overwrite"
    )
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"cnnlab train: --overwrite: deleted the old run's config.json, checkpoint.npz, model.npz, "
        f"history.csv, metrics.json, report.html, plots in {out}"
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.npz",
        "config.json",
        "history.csv",
        "metrics.json",
        "model.npz",
        "notes.txt",
    ]
    assert conv_channels(out) == (6, 6)


def test_an_empty_existing_folder_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    code, err = cli(capsys, "train", "--model", TINY, "--out", str(out), *QUICK)
    assert code == 0 and err == ""
    assert (out / "model.npz").is_file() and not (out / LOCK_FILE).exists()


def test_resume_and_overwrite_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert cli(capsys, "train", "--model", TINY, "--out", str(out), *QUICK)[0] == 0
    before = snapshot(out)
    code, err = cli(capsys, "train", "--resume", str(out), "--overwrite", "--quiet")
    assert code == 1
    assert err.strip() == (
        "cnnlab train: error: --resume and --overwrite contradict each other: --resume continues the "
        "run in the folder, --overwrite deletes it. Give one of them"
    )
    assert snapshot(out) == before


def test_default_run_folders_of_the_same_second_do_not_collide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnlab.train.runs import run

    monkeypatch.setattr(run, "default_run_dir", lambda: tmp_path / "runs" / "20260101-000000")
    config = {"model": TINY, "epochs": 1, "batch_size": 64}
    first = run.train_run(run.TrainConfig(**config), verbose=False).run_dir
    second = run.train_run(run.TrainConfig(**config), verbose=False).run_dir
    assert (first.name, second.name) == ("20260101-000000", "20260101-000000-2")
    assert json.loads((second / "config.json").read_text())["out"] == str(second)


# ---- a failed start writes nothing ------------------------------------------------------------
FAILED_STARTS = {
    "no CUDA": (
        ["--backend", "torch", "--device", "cuda"],
        "--device cuda: PyTorch sees no CUDA GPU",
    ),
    "bad --augment": (["--augment", "blur"], "parse_augment: unknown augmentation 'blur'"),
    "unknown optimizer": (["--optimizer", "nope"], "unknown optimizer 'nope'"),
    "bad --dropout": (
        ["--model", "small_bn", "--dropout", "2"],
        "argument `dropout` must be a number with 0 <= dropout < 1",
    ),
    "--seed -1": (["--seed", "-1"], "train: argument `seed` must be an int >= 0"),
}


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make "no GPU" true on any machine (torch imported only if installed)."""
    try:
        import torch
    except ImportError:
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("case", FAILED_STARTS)
def test_a_failed_start_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_cuda: None, case: str
) -> None:
    argv, text = FAILED_STARTS[case]
    if case == "no CUDA":
        pytest.importorskip("torch")
    out = tmp_path / "new" / "run"
    code, err = cli(capsys, "train", "--model", TINY, *QUICK, *argv, "--out", str(out))
    assert code == 1 and text in err, err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", FAILED_STARTS)
def test_a_failed_start_with_overwrite_leaves_the_finished_run_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_cuda: None, finished_run: Path, case: str
) -> None:
    argv, text = FAILED_STARTS[case]
    if case == "no CUDA":
        pytest.importorskip("torch")
    out = shutil.copytree(finished_run, tmp_path / "done")
    before = snapshot(out)
    assert "report.html" in before and "plots/learning_curves.png" in before
    code, err = cli(capsys, "train", "--model", TINY, *QUICK, *argv, "--out", str(out), "--overwrite")
    assert code == 1 and text in err, err
    assert snapshot(out) == before
    assert main(["train", "--resume", str(out), "--quiet", "--no-plots"]) == 0  # still resumable


def test_a_planned_default_folder_that_got_taken_becomes_name_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --dashboard` names the default folder before the run claims it (for the page's
    link); if another run takes that name first, this one still gets NAME-2, not a refusal."""
    from cnnlab.train.runs import run

    planned = tmp_path / "runs" / "20260101-000000"
    config = {"model": TINY, "epochs": 1, "batch_size": 64}
    first = run.train_run(run.TrainConfig(**config), verbose=False, default_dir=planned).run_dir
    second = run.train_run(run.TrainConfig(**config), verbose=False, default_dir=planned).run_dir
    assert (first, second.name) == (planned, "20260101-000000-2")
    assert json.loads((second / "config.json").read_text())["out"] == str(second)


def test_a_resumed_runs_seconds_count_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time as time_module

    from cnnlab.train.loop.callbacks import Callback
    from cnnlab.train.loop.checkpoint import TrainingInterrupted
    from cnnlab.train.runs.config import TrainConfig
    from cnnlab.train.runs.run import train_run

    class SlowThenStop(Callback):
        def on_batch_end(self, batch: int, logs: dict[str, object], ctx: object) -> None:
            if batch == 0:
                time_module.sleep(0.5)  # epoch 1 takes >= 0.5 s; the command then stops

        def on_epoch_begin(self, epoch: int, ctx: object) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    out = tmp_path / "run"
    config = TrainConfig(model=TINY, epochs=2, batch_size=64, out=str(out))
    with pytest.raises(TrainingInterrupted):
        train_run(config, verbose=False, callbacks=[SlowThenStop()])
    result = train_run(config, verbose=False, resume=True)
    history = [float(s) for s in np.genfromtxt(out / "history.csv", delimiter=",", names=True)["seconds"]]
    metrics = json.loads((out / "metrics.json").read_text())
    # metrics.json: the whole run, epoch 1 of the first command included (not only the resume's)
    assert metrics["seconds"] >= sum(history) - 0.02 and metrics["seconds"] >= result.seconds + 0.5
    assert "had finished" not in capsys.readouterr().err

    # resuming the finished run trains nothing, says so, and keeps the weights
    with np.load(out / "model.npz") as npz:
        before = {k: npz[k] for k in npz.files}
    again = train_run(config, verbose=False, resume=True)
    assert f"{out} had finished (all 2 epochs are done): nothing left to train" in capsys.readouterr().err
    assert len(again.history) == 2
    with np.load(out / "model.npz") as npz:
        assert sorted(npz.files) == sorted(before) and all(np.array_equal(npz[k], before[k]) for k in before)


def test_a_run_without_model_npz_yet_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    first = start(["--model", TINY, "--out", str(out), *QUICK, "--epochs", "3"], slow=1)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.npz").exists():  # epoch 1 saved, epoch 2 on its way
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.01)
    code, err = cli(capsys, "evaluate", str(out))
    assert code == 1 and "is still training (" in err and "model.npz is written when the run ends" in err
    first.kill()
    first.communicate()
    epochs = len((out / "history.csv").read_text().splitlines()) - 1
    for command in ("evaluate", "predict"):
        code, err = cli(capsys, command, str(out), *(["x.png"] if command == "predict" else []))
        word = "epoch" if epochs == 1 else "epochs"
        assert code == 1 and err.strip() == (
            f"cnnlab {command}: error: {out} has no model.npz: its training was killed after {epochs} "
            f"{word} (saved in checkpoint.npz). Finish it with: cnnlab train --resume {out}"
        )
