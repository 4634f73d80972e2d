"""Impossible optimizer and training values are refused up front by the CLI (issue 15): one
line naming the option, what was expected and what was received, exit status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.cli.main import main

TINY = str(Path(__file__).parents[1] / "reliability" / "tiny.json")
E = "cnnlab train: error: "


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--optimizer", "sgd", "--momentum", "5"],
            "SGD: argument `momentum` must be a float in [0, 1). Received: momentum=5.0",
        ),
        (["--optimizer", "sgd", "--momentum", "1"], "SGD: argument `momentum` must be a float in [0, 1)."),
        (["--optimizer", "sgd", "--momentum", "-0.5"], "SGD: argument `momentum` must be a float in [0, 1)."),
        (["--optimizer", "sgd", "--momentum", "nan"], "SGD: argument `momentum` must be a float in [0, 1)."),
        (
            ["--optimizer", "adamw", "--weight-decay", "-0.01"],
            "AdamW: argument `weight_decay` must be a non-negative float. Received: weight_decay=-0.01",
        ),
        (
            ["--optimizer", "sgd", "--weight-decay", "inf"],
            "SGD: argument `weight_decay` must be a non-negative",
        ),
        (["--lr", "0"], "train: argument `lr` must be a positive finite float. Received: lr=0.0"),
        (["--lr", "-1"], "train: argument `lr` must be a positive finite float. Received: lr=-1.0"),
        (["--lr", "inf"], "train: argument `lr` must be a positive finite float. Received: lr=inf"),
        (["--label-smoothing", "1"], "train: argument `label_smoothing` must be in [0, 1)."),
        (
            ["--model", "small_bn", "--dropout", "1.5"],
            "small_bn: argument `dropout` must be a number with 0 <= dropout < 1 (0: none). "
            "Received: dropout=1.5",
        ),
        (
            ["--model", "vgg", "--dropout", "-0.1"],
            "vgg: argument `dropout` must be a number with 0 <= dropout < 1",
        ),
    ],
)
def test_impossible_values_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    model = [] if "--model" in argv else ["--model", TINY]
    code = main(
        ["train", *model, *argv, "--epochs", "1", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    )
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1, captured.err
    assert lines[0].startswith(E + message), lines[0]
    assert "test accuracy" not in captured.out  # refused: nothing was trained
