"""cnnlab tune and --tensorboard on text data (issue 27): trials are text runs with textcnn's
search space; a text run writes TensorBoard scalars and histograms."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.train.analysis.tune import DEFAULT_SPACE, TEXT_SPACE, load_space
from text_data import reviews


def test_the_text_space_is_textcnns(tmp_path: Path) -> None:
    space = load_space(text=True)
    assert space == TEXT_SPACE and space["model"] == "textcnn" and "augment" not in space
    assert "model_args.width" in DEFAULT_SPACE  # images keep theirs
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"model_args.maps": [4], "lr": 0.01}), encoding="utf-8")
    assert load_space(path, text=True) == TEXT_SPACE | {"model_args.maps": [4], "lr": 0.01}


def test_tune_on_text_data_runs_text_trials_and_the_best_config_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("optuna")
    data = reviews(tmp_path / "reviews", per_class=15)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model_args.maps": [4], "model_args.embedding_dim": [8]}), encoding="utf-8")
    out = tmp_path / "tune"
    argv = ["tune", "--data", f"text:{data}?min_count=1", "--trials", "2", "--epochs", "2"]
    assert main([*argv, "--space", str(space), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best: trial" in printed and "text data:" not in printed  # trials train quietly
    for trial in ("0000", "0001"):
        folder = out / "trials" / trial
        assert (folder / "vocab.json").is_file()  # a text run
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        assert config["model"] == "textcnn" and config["model_args"]["maps"] == 4
    best = json.loads((out / "best_config.json").read_text(encoding="utf-8"))
    assert best["data"].startswith("text:") and best["model"] == "textcnn"
    assert main(["train", "--config", str(out / "best_config.json"), "--epochs", "1", "--no-plots",
                 "--quiet", "--out", str(tmp_path / "again")]) == 0  # fmt: skip
    assert (tmp_path / "again" / "vocab.json").is_file()


def test_tensorboard_on_a_text_run(tmp_path: Path) -> None:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tensorboard is in the test extra and must be installed in CI")
        pytest.skip("tensorboard not installed (pip install tensorboard)")
    data = reviews(tmp_path / "reviews", per_class=10)
    run = tmp_path / "run"
    argv = [
        "train",
        "--data",
        f"text:{data}?min_count=1",
        "--epochs",
        "2",
        "--maps",
        "4",
        "--embedding-dim",
        "8",
    ]
    assert main([*argv, "--tensorboard", "--no-plots", "--quiet", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text(encoding="utf-8"))["tensorboard"] is True
    train = EventAccumulator(
        str(run / "tensorboard" / "train"), size_guidance={"scalars": 0, "histograms": 0}
    )
    train.Reload()
    assert [e.step for e in train.Scalars("epoch_loss")] == [1, 2]
    assert {"weights/embed.weight", "gradients/embed.weight", "gradients/conv3.weight"} <= set(
        train.Tags()["histograms"]
    )
    assert train.Tags()["images"] == []  # no Conv2D filters, no image sample
    validation = EventAccumulator(str(run / "tensorboard" / "validation"))
    validation.Reload()
    assert len(validation.Scalars("epoch_accuracy")) == 2
