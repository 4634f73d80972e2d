"""Diagnosis of synthetic learning curves of each kind, and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from histories import CASES, rows

from cnnlab.cli.main import main
from cnnlab.train.analysis.diagnose import diagnose


@pytest.mark.parametrize("kind", CASES)
def test_each_kind_is_recognised(kind: str) -> None:
    result = diagnose(CASES[kind])
    assert result.verdict == kind, str(result)
    assert result.advice and result.reasons


def test_oscillating_loss_is_diverging() -> None:
    tl = [2.0, 1.0, 1.5, 0.9, 1.4, 0.95, 1.45, 0.97]
    assert diagnose(rows(tl, tl, [0.5] * 8, [0.5] * 8)).verdict == "diverging"


def test_overfitting_evidence_names_best_epoch() -> None:
    ev = diagnose(CASES["overfitting"]).evidence
    assert ev["best_epoch"] == 5 and ev["accuracy_gap"] > 0.1


def test_empty_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="history is empty"):
        diagnose([])


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(tmp_path / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CASES["overfitting"][0]))
        writer.writeheader()
        writer.writerows(CASES["overfitting"])
    assert main(["diagnose", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "overfitting" and out["evidence"] and out["advice"]
    assert main(["diagnose", str(tmp_path / "missing")]) == 1
    assert "no history" in capsys.readouterr().err


def test_one_epoch_is_too_few_to_call_a_fit() -> None:
    result = diagnose(rows([0.9], [0.2], [0.75], [0.94]))
    assert result.verdict == "undertrained" and "only 1 epoch" in result.reasons[0]


def test_recipes_resolve_and_unknown_is_listed() -> None:
    import argparse
    import dataclasses

    from cnnlab.cli.train_cmd import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    from cnnlab.cli.train_cmd import resolve_config

    cfg = resolve_config(parser.parse_args(["train", "--recipe", "fashion", "--epochs", "3"]))
    assert (cfg.data, cfg.model, cfg.epochs, cfg.augment) == ("fashion-mnist", "vgg", 3, "shift,flip")
    assert cfg.model_args == {"widths": [16, 64], "dropout": 0.0}
    assert (cfg.batch_size, cfg.lr, cfg.tta) == (128, 3e-3, "flip")
    cfg.model_args["widths"].append(256)  # a copy: the recipe itself is unchanged
    again = resolve_config(parser.parse_args(["train", "--recipe", "fashion"]))
    assert again.model_args["widths"] == [16, 64]
    fast = resolve_config(parser.parse_args(["train", "--recipe", "fashion-fast"]))
    full = resolve_config(parser.parse_args(["train", "--recipe", "fashion"]))
    assert dataclasses.replace(fast, epochs=15) == full
    assert fast.epochs == 10
    on_torch = resolve_config(parser.parse_args(["train", "--recipe", "fashion-torch"]))
    assert (on_torch.backend, on_torch.epochs, on_torch.label_smoothing) == ("torch", 30, 0.1)
    assert on_torch.model_args == {"widths": [16, 64], "dropout": 0.0}
    assert dataclasses.replace(on_torch, backend="numpy", epochs=15, label_smoothing=0.0) == full
    mine = resolve_config(parser.parse_args(["train", "--recipe", "fashion-torch", "--backend", "numpy"]))
    assert mine.backend == "numpy"  # a flag still wins over the recipe
    with pytest.raises(ValueError, match="Valid recipes: fashion, fashion-fast, fashion-torch, digits"):
        resolve_config(parser.parse_args(["train", "--recipe", "nope"]))
