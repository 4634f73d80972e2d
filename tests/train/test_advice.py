"""The diagnosis's advice is valid for the run (issue 15): every suggested command line parses
with the real ``cnnlab train`` parser and builds the model it names, nothing the run already
did is proposed, and runs that end at chance are ``diverging`` with advice to lower the rate."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from histories import CASES, rows

from cnnlab.cli.main import build_parser
from cnnlab.cli.train_cmd import resolve_config
from cnnlab.models import build_model
from cnnlab.models.zoo import MODELS
from cnnlab.train.analysis.advice import good_fit
from cnnlab.train.analysis.diagnose import Diagnosis, diagnose, diagnose_run
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.run import train_run

TINY = str(Path(__file__).parents[1] / "reliability" / "tiny.json")


# One history per verdict (tests/train/histories.py), and the runs.
HISTORIES = {
    **CASES,
    "diverging": rows(
        [2.3, 1.5, 1.2, 3.5, 8.0, math.nan], [2.3, 1.6, 1.3, 4.0, 9.0, math.nan], [0.1] * 6, [0.1] * 6
    ),
    "one_epoch": rows([0.9], [0.5], [0.75], [0.85]),
    # Real digits runs of small_bn, Adam + cosine, 3 epochs (cnnlab train --lr X --epochs 3):
    # on main each was called `undertrained` ("raise the learning rate").
    "lr_1e8": rows(
        [2.4989e25, 4.0926e12, 3.3613e7],
        [1.6154e14, 6.1337e7, 2.6642e7],
        [0.0967, 0.1029, 0.0982],
        [0.0972] * 3,
    ),
    "lr_10": rows(
        [26031.7, 33.71, 2.848], [337.4, 3.232, 2.477], [0.0998, 0.0920, 0.0951], [0.104, 0.097, 0.104]
    ),
    "lr_2": rows(
        [296.6, 2.451, 2.405], [20.85, 2.451, 2.351], [0.1199, 0.0967, 0.0936], [0.125, 0.104, 0.104]
    ),
    "lr_0.3": rows(
        [10.24, 2.348, 2.320], [3.091, 2.313, 2.309], [0.1237, 0.0874, 0.0944], [0.160, 0.097, 0.104]
    ),
}
CHANCE_RUNS = ("lr_1e8", "lr_10", "lr_2", "lr_0.3")

# Run configs: every zoo model, with settings the advice must not repeat or contradict.
CONFIGS: list[dict[str, Any]] = [
    {"model": "small", "optimizer": "adam", "schedule": "cosine"},
    {
        "model": "small",
        "optimizer": "sgd",
        "lr": 1000.0,
        "momentum": 0.9,
        "schedule": "none",
        "weight_decay": 1e-3,
    },
    {"model": "small_bn", "optimizer": "adam", "lr": 1e8},
    {"model": "small_bn", "model_args": {"dropout": 0.3}, "augment": "shift", "early_stopping": 3},
    {"model": "small_bn", "optimizer": "adamw", "lr": 1e-6, "weight_decay": 0.01, "label_smoothing": 0.1},
    {"model": "lenet5", "model_args": {"activation": "tanh", "pool": "avg"}, "optimizer": "sgd", "lr": 10.0},
    {"model": "lenet5", "data": "fashion-mnist", "augment": "shift,flip", "schedule": "step"},
    {"model": "vgg", "model_args": {"depth": 2, "width": 8, "dropout": 0.5}, "optimizer": "adam", "lr": 2.0},
    {
        "model": "vgg",
        "model_args": {"widths": [16, 64], "dropout": 0.0},
        "data": "fashion-mnist",
        "tta": "flip",
    },
    {"model": "vgg", "model_args": {"batch_norm": False}, "optimizer": "sgd", "lr": 0.05, "momentum": 0.99},
    {"model": "resnet", "model_args": {"depth": 2, "width": 8}, "optimizer": "adamw", "schedule": "plateau"},
    {"model": "resnet", "model_args": {"stages": 1, "depth": 1}, "data": "cifar10"},
    {"model": TINY, "optimizer": "adam", "lr": 10.0},
]


def write_config(folder: Path, values: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    config = dataclasses.asdict(TrainConfig.from_dict(values))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return config, folder / "config.json"


def build_run_model(config: TrainConfig) -> None:
    """Build the model ``config`` names, as train_run does (8x8 digits-sized input)."""
    if config.model.endswith(".json"):
        assert not config.model_args
        return
    build_model(config.model, in_channels=1, input_size=(8, 8), num_classes=10, rng=0, **config.model_args)


def check_commands(result: Diagnosis, original: dict[str, Any]) -> None:
    """Every command line in the advice parses, resolves, validates, builds and changes the run."""
    shown = [shlex.split(c)[1:] for line in result.advice for c in re.findall(r"`(cnnlab [^`]*)`", line)]
    assert shown == result.commands, (result.advice, result.commands)
    parser = build_parser()
    for argv in result.commands:
        args = parser.parse_args(argv)
        assert args.command == "train"
        new = resolve_config(args)
        new.validate()
        build_run_model(new)
        assert dataclasses.asdict(new) | {"out": None} != original | {"out": None}, argv


@pytest.mark.parametrize(
    "values", CONFIGS, ids=lambda v: f"{Path(v['model']).stem}-{v.get('optimizer', 'adam')}"
)
@pytest.mark.parametrize("history", HISTORIES)
def test_every_suggested_command_parses_builds_and_changes_the_run(
    tmp_path: Path, values: dict[str, Any], history: str
) -> None:
    config, path = write_config(tmp_path / "run", values)
    result = diagnose(HISTORIES[history], config, config_path=path)
    assert result.advice
    check_commands(result, config)
    text = "\n".join(result.advice)
    model = MODELS.get(config["model"])
    if model is None or "dropout" not in inspect.signature(model).parameters:
        assert "--dropout" not in text, text  # `--model small --dropout 0.3` fails to build
    if config["schedule"] == "cosine":
        assert "--schedule cosine" not in text
    if config["optimizer"] == "adam":
        assert "--optimizer adam " not in text + " "
    if config["early_stopping"]:
        assert "--early-stopping" not in text


@pytest.mark.parametrize("history", HISTORIES)
def test_without_a_config_only_options_every_model_has_are_named(history: str) -> None:
    result = diagnose(HISTORIES[history])
    assert result.commands == []
    text = " ".join(result.advice)
    for flag in ("--dropout", "--depth", "--width", "--model", "--batch-norm", "--schedule", "--optimizer"):
        assert flag not in text, text


@pytest.mark.parametrize("history", CHANCE_RUNS)
def test_runs_that_end_at_chance_are_diverging_with_advice_to_lower_the_rate(
    tmp_path: Path, history: str
) -> None:
    lr = float(history.split("_")[1])
    config, path = write_config(tmp_path / "run", {"model": "small_bn", "optimizer": "adam", "lr": lr})
    result = diagnose(HISTORIES[history], config, config_path=path)
    assert result.verdict == "diverging", str(result)
    assert result.advice[0].startswith(f"Lower the learning rate from {lr:.3g} to 0.002")
    assert result.commands[0][-2:] == ["--lr", "0.002"]
    text = str(result).lower()
    assert "raise" not in text and "still improving" not in text and "--schedule" not in text
    assert "chance level ln 10 = 2.303" in result.reasons[0]
    # The class count also comes from a bare history with num_classes, and without a config
    bare = diagnose(HISTORIES[history], num_classes=10)
    assert bare.verdict == "diverging" and "Lower the learning rate" in bare.advice[0]


def test_a_too_small_learning_rate_at_chance_is_not_diverging(tmp_path: Path) -> None:
    # Real digits run: small_bn, Adam, lr 1e-6, 3 epochs: the loss sits at ln 10 because nothing moved.
    history = rows(
        [2.3373, 2.3342, 2.3311], [2.3279, 2.3267, 2.3254], [0.070, 0.071, 0.077], [0.090, 0.090, 0.104]
    )
    config, path = write_config(tmp_path / "run", {"model": "small_bn", "optimizer": "adam", "lr": 1e-6})
    result = diagnose(history, config, config_path=path)
    assert result.verdict == "undertrained", str(result)
    assert result.advice[0].startswith("Raise the learning rate from 1e-06") and result.commands[0][-2:] == [
        "--lr",
        "0.002",
    ]
    assert "Lower" not in " ".join(result.advice)


def test_one_epoch_claims_no_trend(tmp_path: Path) -> None:
    config, path = write_config(tmp_path / "run", {"model": "small", "epochs": 1})
    result = diagnose(HISTORIES["one_epoch"], config, config_path=path)
    assert result.verdict == "undertrained"
    assert "still improving" not in str(result) and "still falling" not in str(result)
    assert result.commands == [["train", "--config", str(path), "--epochs", "6"]]


def test_overfitting_small_gets_no_dropout_and_small_bn_does(tmp_path: Path) -> None:
    for model, expect in (
        ("small", False),
        ("small_bn", True),
        ("vgg", True),
        ("lenet5", False),
        ("resnet", False),
    ):
        config, path = write_config(tmp_path / model, {"model": model, "optimizer": "adam", "data": "digits"})
        result = diagnose(HISTORIES["overfitting"], config, config_path=path)
        assert result.verdict == "overfitting"
        assert any("--dropout" in argv for argv in result.commands) is expect, (model, result.advice)
        assert ["--augment", "shift,rotate"] == result.commands[0][-2:]  # no flips for digits
        assert ["--optimizer", "adamw", "--weight-decay", "0.01"] == result.commands[-2][-4:]


def test_settings_the_run_already_used_are_not_suggested(tmp_path: Path) -> None:
    values = {"model": "small_bn", "optimizer": "adam", "schedule": "cosine", "lr": 0.5, "early_stopping": 2}
    config, path = write_config(tmp_path / "run", values)
    result = diagnose(HISTORIES["diverging"], config, config_path=path)
    assert result.verdict == "diverging"
    assert [argv[3:] for argv in result.commands] == [["--lr", "0.002"]]
    sgd, sgd_path = write_config(
        tmp_path / "sgd", {"optimizer": "sgd", "lr": 0.5, "schedule": "none", "momentum": 0.99}
    )
    flags = [argv[3:] for argv in diagnose(HISTORIES["diverging"], sgd, config_path=sgd_path).commands]
    assert flags == [["--lr", "0.05"], ["--momentum", "0.9"], ["--optimizer", "adam", "--lr", "0.002"],
                     ["--schedule", "cosine"]]  # fmt: skip


def test_lenet5_with_tanh_is_not_told_to_switch_to_vgg(tmp_path: Path) -> None:
    # vgg has no `activation` argument: `--model vgg` on this config could not be built.
    config, path = write_config(tmp_path / "run", {"model": "lenet5", "model_args": {"activation": "tanh"}})
    result = diagnose(HISTORIES["underfitting"], config, config_path=path)
    assert result.verdict == "underfitting"
    assert not any("--model" in argv for argv in result.commands)
    assert any("deeper or wider" in line for line in result.advice)
    plain, plain_path = write_config(tmp_path / "plain", {"model": "small"})
    commands = diagnose(HISTORIES["underfitting"], plain, config_path=plain_path).commands
    assert commands[0][3:] == ["--model", "vgg", "--depth", "3", "--width", "32"]


# ---- real tiny runs on digits ---------------------------------------------------------------
def tiny_run(tmp_path: Path, **values: Any) -> Path:
    config = TrainConfig(model=TINY, data="digits", batch_size=64, out=str(tmp_path / "run"), **values)
    return train_run(config, verbose=False).run_dir


def test_real_run_at_a_huge_learning_rate_is_diverging(tmp_path: Path) -> None:
    run = tiny_run(tmp_path, optimizer="adam", lr=1.0, epochs=2)
    result = diagnose_run(run)
    assert result.verdict == "diverging", str(result)
    assert result.commands[0] == ["train", "--config", str(run / "config.json"), "--lr", "0.002"]
    check_commands(result, json.loads((run / "config.json").read_text()))


def test_real_one_epoch_run_makes_no_claim_about_trends(tmp_path: Path) -> None:
    run = tiny_run(tmp_path, optimizer="adam", lr=2e-3, epochs=1)
    result = diagnose_run(run)
    assert result.evidence["train_loss_trend_per_epoch"] == 0.0
    assert "still improving" not in str(result) and "still falling" not in str(result)
    check_commands(result, json.loads((run / "config.json").read_text()))


def test_a_run_flat_at_chance_with_a_usual_rate_is_diverging_and_mentions_the_labels(tmp_path: Path) -> None:
    history = rows([2.31, 2.305, 2.304], [2.306, 2.305, 2.304], [0.10, 0.11, 0.10], [0.10, 0.10, 0.10])
    config, path = write_config(tmp_path / "run", {"model": "small_bn", "optimizer": "adam", "lr": 2e-3})
    result = diagnose(history, config, config_path=path)
    assert result.verdict == "diverging" and "learned nothing" in result.reasons[0]
    assert "rising" not in result.reasons[0]
    assert result.commands[0][-2:] == ["--lr", "0.0002"] and "labels" in result.advice[-1]
    check_commands(result, config)


def test_good_fit_advice_for_a_text_run_does_not_suggest_image_augmentation() -> None:
    (text,) = good_fit({"data": "text:reviews"})
    assert "augmentation" not in text.text and "--vectors" in text.text
    (image,) = good_fit({"data": "digits"})
    assert "augmentation with a larger model" in image.text
