"""`cnnlab tune` on bad data (issue 15, part 2): one-line errors, and a chance-level best flagged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli.main import main

optuna = pytest.importorskip("optuna")
Image = pytest.importorskip("PIL.Image")

#: A tiny, fast search: the small zoo model, no model_args.
SPACE = {
    "model": "small",
    "model_args.dropout": None,
    "model_args.width": None,
    "model_args.depth": None,
    "augment": "none",
    "batch_size": [32],
}


def test_unknown_data_is_one_line_and_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tune"
    assert main(["tune", "--data", "nope", "--trials", "1", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "cnnlab tune: error: load_dataset: unknown dataset 'nope'. Valid names: digits, mnist, "
        "fashion-mnist, cifar10, or the path of an existing folder of <class>/*.png images"
    ]
    assert "Traceback" not in captured.out and "[W " not in captured.out
    assert not out.exists()  # no study.db, no trials/ for a study that cannot run


def test_a_chance_level_best_is_flagged_and_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two classes of identical images: no model can do better than guessing.
    for name in ("a", "b"):
        (tmp_path / "same" / name).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(np.full((8, 8), 128, np.uint8)).save(tmp_path / "same" / name / f"{i}.png")
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    out = tmp_path / "tune"
    argv = ["tune", "--data", str(tmp_path / "same"), "--trials", "2", "--epochs", "1", "--quiet"]
    code = main([*argv, "--space", str(tmp_path / "space.json"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert not (out / "best_config.json").exists()
    assert "no trial learned: the best val accuracy, 0.5000, is at chance level (0.5000" in captured.out
    assert "best config:" not in captured.out and "reproduce:" not in captured.out
    lines = captured.err.splitlines()
    assert lines[0].startswith("cnnlab tune: error: no trial learned anything: the best, trial ")
    assert (
        "val accuracy 0.5000, chance level (always guessing the most common class gives 0.5000)" in lines[0]
    )
    assert lines[1].startswith("  Check that the images and their class folders match")


def test_chance_bound() -> None:
    from cnnlab.train.analysis.tune import chance_bound

    chance, bound = chance_bound(np.repeat(np.arange(10), 144), 0.1)  # digits-like: 144 val images
    assert chance == pytest.approx(0.1) and bound == pytest.approx(0.1 + 2 * np.sqrt(0.09 / 144))
    chance, bound = chance_bound(np.array([0, 0, 0, 1]), 0.5)  # tiny validation part: halfway at most
    assert chance == 0.75 and bound == pytest.approx(0.875)
