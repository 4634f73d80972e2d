"""A run trained on a relative folder works from any folder (issue 23 item 5).

`--data clothes` from folder W stored "clothes": evaluating, resuming or re-running the run
from anywhere else said `unknown dataset 'clothes'`. Now config.json, data_dir and model.npz
hold the absolute path, and a folder that has since gone is named, with the run trained on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_run import cli
from cnnlab.io import load_with_extra

TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")
QUICK = ["--model", TINY, "--epochs", "1", "--batch-size", "8", "--quiet", "--no-plots"]


def image_folder(root: Path, classes: tuple[str, ...] = ("bag", "coat", "shoe"), per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_run_on_a_relative_folder_is_evaluated_resumed_and_rerun_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("PIL")
    work, other = tmp_path / "W", tmp_path / "B"
    clothes = image_folder(work / "clothes").resolve()
    other.mkdir()
    monkeypatch.chdir(work)
    code, err = cli(capsys, "train", "--data", "clothes", *QUICK, "--out", "runs/r")
    assert code == 0, err
    run = (work / "runs" / "r").resolve()
    assert json.loads((run / "config.json").read_text())["data"] == str(clothes)
    _, extra = load_with_extra(run / "model.npz")
    assert extra["dataset"] == str(clothes)

    monkeypatch.chdir(other)
    code, err = cli(capsys, "evaluate", str(run))
    assert code == 0, err
    code, err = cli(capsys, "train", "--resume", str(run), "--quiet", "--no-plots")
    assert code == 0, err
    assert "had finished" in err and "unknown dataset" not in err
    code, err = cli(
        capsys, "train", "--config", str(run / "config.json"), "--quiet", "--no-plots", "--out", "r2"
    )
    assert code == 0, err

    # the folder moves away: each command names it and the run trained on it
    clothes.rename(work / "clothes-moved")
    code, err = cli(capsys, "train", "--resume", str(run), "--quiet", "--no-plots")
    assert code == 1
    assert f"the dataset folder {clothes} does not exist ({run} was trained on it;" in err, err
    code, err = cli(capsys, "evaluate", str(run))
    assert code == 1
    assert f"{run} was trained on the folder {clothes}, which no longer exists" in err, err
    assert "unknown dataset" not in err


def test_resume_accepts_the_relative_data_path_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("PIL")
    image_folder(tmp_path / "clothes")
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "train", "--data", "clothes", *QUICK, "--out", "r")[0] == 0
    code, err = cli(capsys, "train", "--resume", "r", "--data", "clothes", "--quiet", "--no-plots")
    assert code == 0, err
