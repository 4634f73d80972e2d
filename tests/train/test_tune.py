"""`cnnlab tune`: a tiny Optuna study on the embedded digits data (tiny widths, 2 epochs)."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from cnnlab.cli.main import build_parser, main
from cnnlab.errors import CnnlabError
from cnnlab.train.analysis.tune import DEFAULT_SPACE, PruningCallback, load_space, suggest_config, tune
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.history import History
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.run import train_run

optuna = pytest.importorskip("optuna")

SPACE = """\
model_args.width: [2, 4]
model_args.depth: 1
batch_size: {type: categorical, choices: [64]}
lr: {type: float, low: 1e-3, high: 3e-2, log: true}
"""


def _val_accuracies(path: Path) -> list[str]:
    with open(path) as f:
        return [row["val_accuracy"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tune")
    (root / "space.yaml").write_text(SPACE)
    out = root / "out"
    args = ["tune", "--trials", "3", "--epochs", "2", "--space", str(root / "space.yaml"), "--out", str(out)]
    assert main([*args, "--quiet"]) == 0
    return out


def _study(out: Path) -> Any:
    return optuna.load_study(study_name="cnnlab-digits", storage=f"sqlite:///{out / 'study.db'}")


def test_tune_writes_db_trial_folders_and_best_config(study_dir: Path) -> None:
    assert (study_dir / "study.db").exists()
    for n in range(3):
        trial_dir = study_dir / "trials" / f"{n:04d}"
        for name in ("config.json", "history.csv", "model.npz", "metrics.json", "trial.json"):
            assert (trial_dir / name).exists(), (n, name)
        info = json.loads((trial_dir / "trial.json").read_text())
        assert info["number"] == n and info["state"] == "COMPLETE" and info["epochs_trained"] == 2
    study = _study(study_dir)
    assert len(study.trials) == 3
    best = json.loads((study_dir / "best_config.json").read_text())
    assert TrainConfig.from_dict(best).epochs == 2  # a valid TrainConfig dict
    # Chosen by validation accuracy (the study's value), never test accuracy.
    assert best == study.best_trial.user_attrs["config"]


def test_space_file_overrides_defaults(study_dir: Path) -> None:
    for n in range(3):
        info = json.loads((study_dir / "trials" / f"{n:04d}" / "trial.json").read_text())
        config = json.loads((study_dir / "trials" / f"{n:04d}" / "config.json").read_text())
        assert info["params"]["model_args.width"] in (2, 4)
        assert "model_args.depth" not in info["params"]  # fixed, not searched
        assert config["model_args"]["depth"] == 1 and config["batch_size"] == 64
        assert 1e-3 <= config["lr"] <= 3e-2  # "1e-3" (text in YAML) still works as a bound
        assert config["model"] == "vgg" and "optimizer" in info["params"]  # defaults kept


def test_rerun_resumes_the_study(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    shutil.copytree(study_dir, out)
    space = study_dir.parent / "space.yaml"
    assert main(["tune", "--trials", "2", "--epochs", "2", "--space", str(space), "--out", str(out)]) == 0
    study = _study(out)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert (out / "trials" / "0004" / "trial.json").exists()
    # The sampler seed moves on with the study: resumed trials do not redraw earlier points.
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 5
    text = capsys.readouterr().out
    assert "val_acc" in text and "cnnlab train --config" in text and "(5 trials)" in text


def test_best_config_reproduces_with_train(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rerun"
    best = study_dir / "best_config.json"
    args = ["train", "--config", str(best), "--out", str(out), "--quiet"]
    if "--no-plots" in _train_options():  # the HTML report is slow and not what we test here
        args.append("--no-plots")
    assert main(args) == 0
    number = _study(study_dir).best_trial.number
    trial_dir = study_dir / "trials" / f"{number:04d}"
    assert _val_accuracies(out / "history.csv") == _val_accuracies(trial_dir / "history.csv")


def _train_options() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {flag for action in sub.choices["train"]._actions for flag in action.option_strings}


class _StubTrial:
    def __init__(self, prune: bool) -> None:
        self.prune = prune
        self.reports: list[tuple[float, int]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


def test_pruning_callback_reports_and_raises() -> None:
    keep = _StubTrial(prune=False)
    PruningCallback(keep).on_epoch_end(1, {"val_accuracy": 0.5}, None)  # type: ignore[arg-type]
    assert keep.reports == [(0.5, 1)]
    with pytest.raises(optuna.TrialPruned, match=r"pruned at epoch 3: val_accuracy=0\.2500"):
        PruningCallback(_StubTrial(prune=True)).on_epoch_end(3, {"val_accuracy": 0.25}, None)  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match="val_split must be > 0"):
        PruningCallback(keep).on_epoch_end(1, {"val_accuracy": float("nan")}, None)  # type: ignore[arg-type]


def test_pruned_run_folder_is_consistent(tmp_path: Path) -> None:
    config = TrainConfig(model="vgg", model_args={"width": 2, "depth": 1}, epochs=3, out=str(tmp_path / "r"))
    with pytest.raises(optuna.TrialPruned):
        train_run(config, verbose=False, callbacks=[PruningCallback(_StubTrial(prune=True))])
    assert len(_val_accuracies(tmp_path / "r" / "history.csv")) == 1  # the pruned epoch is logged
    assert (tmp_path / "r" / "config.json").exists() and (tmp_path / "r" / "model.npz").exists()
    assert not (tmp_path / "r" / "metrics.json").exists()  # no test evaluation for pruned trials


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return True


def test_tune_records_pruned_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kwargs: _AlwaysPrune())
    space = {**DEFAULT_SPACE, "model_args.width": 2, "model_args.depth": 1}
    result = tune("digits", 1, epochs=2, space=space, out=tmp_path, verbose=False)
    info = json.loads((tmp_path / "trials" / "0000" / "trial.json").read_text())
    assert info["state"] == "PRUNED" and info["epochs_trained"] == 1 and info["val_accuracy"] is None
    assert result.best_config_path is None and not (tmp_path / "best_config.json").exists()
    assert "PRUNED" in result.table and "no trial has completed" in result.table


def test_diverged_trial_fails_and_the_study_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def diverge(config: TrainConfig, verbose: bool, callbacks: Any) -> None:
        Path(config.out or "").mkdir(parents=True)
        raise TrainingDiverged("loss is nan", History(), 1, 0)

    monkeypatch.setattr("cnnlab.train.analysis.tune.train_run", diverge)
    result = tune("digits", 2, epochs=1, out=tmp_path, verbose=False)
    assert [t.state.name for t in result.study.trials] == ["FAIL", "FAIL"]
    info = json.loads((tmp_path / "trials" / "0001" / "trial.json").read_text())
    assert info["state"] == "FAIL" and info["val_accuracy"] is None
    assert result.best_config_path is None


def test_augment_on_means_the_dataset_default() -> None:
    space = {"augment": ["none", "on"], "model_args.width": [4, 8]}
    trial = optuna.trial.FixedTrial({"augment": "on", "model_args.width": 8})
    config = suggest_config(trial, space, TrainConfig(data="fashion-mnist"))
    assert config.augment == "shift,flip" and config.model_args == {"width": 8}
    config = suggest_config(trial, space, TrainConfig(data="digits"))
    assert config.augment == "shift"


def test_load_space_null_drops_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("model_args.dropout: null\nschedule: [none, cosine]\n")
    space = load_space(path)
    assert "model_args.dropout" not in space and space["schedule"] == ["none", "cosine"]
    assert space["lr"] == DEFAULT_SPACE["lr"]
    for text, match in [
        ("epochs: 3\n", "comes from the command line"),
        ("learning_rate: 0.1\n", "unknown name `learning_rate`"),
        ("lr: {type: float, low: 0.1}\n", "argument `lr` must be a float entry with `low` and `high`"),
        ("lr: {type: normal}\n", "type float, int or categorical"),
        ("- lr\n", "must be a mapping"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_space(path)


def test_tune_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`trials` must be a positive int"):
        tune("digits", 0, out=tmp_path, verbose=False)
    with pytest.raises(ValueError, match="`epochs` must be a positive int"):
        tune("digits", 1, epochs=0, out=tmp_path, verbose=False)


def test_without_optuna_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    assert main(["tune", "--trials", "1", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "pip install optuna" in err and "pip install cnnlab[tune]" in err


def test_a_second_tune_into_a_folder_in_use_is_refused_before_the_study(tmp_path: Path) -> None:
    # Two tunes on one folder raced for study.db (sqlite: 'UNIQUE constraint failed'); the
    # second now stops with the folder-lock message and touches nothing.
    from cnnlab.train.runs.runlock import RunFolderLocked, locked

    out = tmp_path / "tune"
    out.mkdir()
    with locked(out), pytest.raises(RunFolderLocked, match="is in use by another cnnlab run"):
        tune("digits", trials=1, epochs=1, out=out, verbose=False)
    assert not (out / "study.db").exists()
    result = tune("digits", trials=1, epochs=1, out=out, verbose=False)  # free again
    assert len(result.study.trials) == 1 and not (out / ".cnnlab.lock").exists()
