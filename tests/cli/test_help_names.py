"""Help texts name what the registries hold, generated from them (issue 24: each fact once)."""

from __future__ import annotations

import re

from cnnlab.cli.main import _command_parser, build_parser
from cnnlab.data.datasets import DATASETS
from cnnlab.models.classic import CLASSIC
from cnnlab.models.zoo import MODELS, model_options
from cnnlab.optim import OPTIMIZERS
from cnnlab.train.analysis.tune import DEFAULT_SPACE


def _option_help(command: str, option: str) -> str:
    parser = _command_parser(build_parser(), command)
    for action in parser._actions:
        if option in action.option_strings:
            return " ".join(str(action.help).split())
    raise AssertionError(f"cnnlab {command} has no {option}")


def test_train_help_names_every_zoo_model_dataset_and_optimizer() -> None:
    model_help = _option_help("train", "--model")
    assert set(MODELS) <= set(re.split(r"[^\w]+", model_help))
    small = [name for name in MODELS if name not in CLASSIC]  # the lecture's models come first
    assert model_help.startswith(
        f"zoo name ({', '.join(small)}; the classic architectures {next(iter(CLASSIC))}"
    )
    data_help = _option_help("train", "--data")
    assert all(name in data_help for name in DATASETS)
    optimizer_help = _option_help("train", "--optimizer")
    assert optimizer_help == "sgd, adam or adamw" and all(name in optimizer_help for name in OPTIMIZERS)
    decay_help = _option_help("train", "--weight-decay")
    assert all(name in decay_help for name in OPTIMIZERS)


def test_summary_help_names_the_zoo_models_that_take_an_option() -> None:
    for option in ("depth", "width"):
        takers = [name for name in MODELS if option in model_options(name)]
        assert _option_help("summary", f"--{option}") == f"zoo option ({'/'.join(takers)})"
        assert takers == ["vgg", "resnet"]


def test_tune_searches_every_optimizer() -> None:
    assert DEFAULT_SPACE["optimizer"] == list(OPTIMIZERS)
