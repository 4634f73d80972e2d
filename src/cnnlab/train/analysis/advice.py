"""Advice for a diagnosis that is valid for the run it describes.

Each piece of advice is a sentence and, where it changes a setting, the options of
``cnnlab train`` that make the change. Before a suggestion is shown it is applied to the
run's config and kept only if

- it changes something (no ``--schedule cosine`` to a run that used cosine), and
- the run's model accepts the result (no ``--dropout`` for ``small``, which has no
  dropout argument; no ``--model vgg`` when the run's model options do not fit vgg).

With the run folder known, a suggestion is a whole command line,
``cnnlab train --config RUN/config.json --lr 0.0002``; ``tests/train/test_advice.py``
parses every one with the real ``cnnlab train`` parser and builds the model it names.
Without a config (``diagnose(history.rows)``), only options valid for every model are named.
"""

from __future__ import annotations

import inspect
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.data.datasets import MIRROR_SAFE
from cnnlab.data.text import is_text_data
from cnnlab.errors import CnnlabError
from cnnlab.models.zoo import MODELS
from cnnlab.train.runs.config import FLAGS, MODEL_FLAGS, TrainConfig, apply_options
from cnnlab.train.runs.text_run import check_text_config

# The usual learning-rate range of each optimizer (rules of thumb for CNNs) and the value
# suggested when a run's rate is far outside it.
LR_RANGE = {"sgd": (1e-3, 0.1), "adam": (1e-4, 1e-2), "adamw": (1e-4, 1e-2)}
LR_TYPICAL = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}


@dataclass
class Suggestion:
    """A sentence and the ``cnnlab train`` options it proposes (none: advice in words only)."""

    text: str
    flags: tuple[str, ...] = ()
    fallback: str = ""  # said instead when the run's model cannot take ``flags``


def _num(value: float) -> str:
    """Short decimal for a command line: 0.0002, 5e-05, 0.05."""
    return f"{value:.3g}"


# ---- applying options to a config (the CLI's own table: train/runs/config.py) -------------
def apply_flags(config: dict[str, Any], flags: tuple[str, ...]) -> dict[str, Any]:
    """``config`` with ``flags`` applied as ``cnnlab train --config ... FLAGS`` would.

    Raises:
        ValueError: an option that ``cnnlab train`` does not have.
    """
    pairs = list(zip(flags[::2], flags[1::2], strict=True))
    given: dict[str, Any] = {}
    for flag, text in pairs:
        if flag in FLAGS:
            given[flag] = FLAGS[flag][1](text)
        elif flag in MODEL_FLAGS:
            given[flag] = MODEL_FLAGS[flag](text)
        else:
            raise ValueError(f"advice: {flag} is not an option of cnnlab train")
    return apply_options(config, given)


def model_accepts(model: str, model_args: dict[str, Any]) -> bool:
    """True when zoo model ``model`` has every argument of ``model_args`` (a file: none)."""
    if model not in MODELS:
        return not model_args
    try:
        inspect.signature(MODELS[model]).bind(1, (28, 28), 10, None, **model_args)
    except TypeError:
        return False
    return True


def model_has(config: dict[str, Any] | None, arg: str) -> bool:
    """True when the run's zoo model has the argument ``arg`` (e.g. ``dropout``)."""
    if config is None:
        return False
    fn = MODELS.get(str(config.get("model")))
    return fn is not None and arg in inspect.signature(fn).parameters


def check(config: dict[str, Any] | None, suggestion: Suggestion) -> str:
    """``ok``; ``same`` when it would change nothing; ``invalid`` when the result cannot be built."""
    if not suggestion.flags:
        return "ok"
    if config is None:  # no config: only options every zoo model takes
        model_specific = ("--dropout", "--depth", "--width", "--widths", "--batch-norm", "--model")
        return "invalid" if any(f in model_specific for f in suggestion.flags[::2]) else "ok"
    try:
        new = apply_flags(config, suggestion.flags)
    except (ValueError, TypeError):
        return "invalid"
    if new == config:
        return "same"
    if is_text_data(str(new.get("data", ""))):  # a text run: no augmentation, TTA, image model (text_run.py)
        try:
            check_text_config(TrainConfig.from_dict(new))
        except (CnnlabError, ValueError):
            return "invalid"
        return "ok"
    return "ok" if model_accepts(str(new.get("model")), new["model_args"]) else "invalid"


def advise(
    suggestions: list[Suggestion], config: dict[str, Any] | None, config_path: Path | None
) -> tuple[list[str], list[list[str]]]:
    """The advice lines and the argv of every command they suggest (checked, see ``check``)."""
    lines: list[str] = []
    commands: list[list[str]] = []
    for suggestion in suggestions:
        verdict = check(config, suggestion)
        if verdict == "invalid" and suggestion.fallback:
            suggestion = Suggestion(suggestion.fallback)
        elif verdict != "ok":
            continue
        line, argv = render(suggestion, config_path)
        lines.append(line)
        if argv is not None:
            commands.append(argv)
    return lines, commands


def render(suggestion: Suggestion, config_path: Path | None) -> tuple[str, list[str] | None]:
    """The advice line and the argv of its command (after ``cnnlab``), if it has one."""
    if not suggestion.flags:
        return suggestion.text, None
    if config_path is None:
        return f"{suggestion.text} (`{shlex.join(suggestion.flags)}`)", None
    argv = ["train", "--config", str(config_path), *suggestion.flags]
    return f"{suggestion.text}: `cnnlab {shlex.join(argv)}`", argv


def lr_below_range(config: dict[str, Any]) -> bool:
    """True when the run's learning rate is below its optimizer's usual range."""
    opt = str(config.get("optimizer", "adam")).lower()
    try:
        return float(config.get("lr", math.nan)) < LR_RANGE.get(opt, (1e-4, 0.1))[0]
    except (TypeError, ValueError):
        return False


# ---- what to suggest, by verdict -------------------------------------------------------------
def lr_suggestions(config: dict[str, Any] | None, lower: bool) -> list[Suggestion]:
    if config is None:
        if lower:
            return [Suggestion("Lower the learning rate, e.g. 10x (--lr)")]
        return []
    opt, lr = str(config.get("optimizer", "adam")).lower(), float(config.get("lr", 0.0))
    low, high = LR_RANGE.get(opt, (1e-4, 0.1))
    typical = LR_TYPICAL.get(opt, 1e-3)
    where = f"{opt}'s usual range is {_num(low)} to {_num(high)}"
    if lower and lr < low:  # not the rate: something else makes the loss explode
        return [Suggestion(f"The learning rate {_num(lr)} is already small ({where}): check the data "
                           "for NaN/inf and how the inputs are scaled.")]  # fmt: skip
    if lower:
        new = typical if lr > 10 * high else lr / 10
        return [
            Suggestion(
                f"Lower the learning rate from {_num(lr)} to {_num(new)} ({where})", ("--lr", _num(new))
            )
        ]
    if lr < low:
        return [Suggestion(f"Raise the learning rate from {_num(lr)} ({where})", ("--lr", _num(typical)))]
    return []


def diverging(config: dict[str, Any] | None) -> list[Suggestion]:
    out = lr_suggestions(config, lower=True)
    if config is None:
        out.append(Suggestion("Check the data for NaN/inf and that the inputs are normalized."))
        return out
    if str(config.get("optimizer")).lower() == "sgd":
        if float(config.get("momentum", 0.0)) > 0.95:
            out.append(Suggestion("Use a momentum of at most 0.9 with SGD", ("--momentum", "0.9")))
        out.append(Suggestion("Or use Adam, which scales its steps per weight",
                              ("--optimizer", "adam", "--lr", _num(LR_TYPICAL["adam"]))))  # fmt: skip
    out.append(
        Suggestion(
            "Warm the learning rate up over the first epoch (cosine schedule)", ("--schedule", "cosine")
        )
    )
    return out


def _augment(config: dict[str, Any]) -> Suggestion:
    current = [
        a.strip() for a in str(config.get("augment", "none")).split(",") if a.strip() not in ("", "none")
    ]
    kinds = ["shift", "flip", "erase"] if config.get("data") in MIRROR_SAFE else ["shift", "rotate", "erase"]
    missing = [k for k in kinds if k not in current]
    wanted = current + missing[: 2 if not current else 1]
    return Suggestion("Add image augmentation", ("--augment", ",".join(wanted)))


def overfitting(config: dict[str, Any] | None) -> list[Suggestion]:
    if config is None:
        return [
            Suggestion(
                "Add image augmentation (--augment shift; flip too where a mirror image keeps its class)"
            ),
            Suggestion("Regularize: weight decay (--weight-decay 5e-4), dropout where the model has it."),
            Suggestion("Stop at the best epoch (--early-stopping 3 restores its weights)."),
            Suggestion("Get more training data, or use a smaller model."),
        ]
    out = [_augment(config)]
    dropout = float((config.get("model_args") or {}).get("dropout", 0.0))
    if model_has(config, "dropout") and dropout < 0.5:
        out.append(
            Suggestion("Add dropout before the classifier", ("--dropout", "0.3" if dropout < 0.3 else "0.5"))
        )
    wd, opt = float(config.get("weight_decay", 0.0)), str(config.get("optimizer")).lower()
    if opt == "adam" and wd == 0:
        out.append(
            Suggestion(
                "Add decoupled weight decay (AdamW)", ("--optimizer", "adamw", "--weight-decay", "0.01")
            )
        )
    elif wd == 0:
        out.append(Suggestion("Add weight decay", ("--weight-decay", "5e-4")))
    elif wd < 0.05:
        out.append(Suggestion(f"Raise the weight decay from {_num(wd)}", ("--weight-decay", _num(wd * 4))))
    if not int(config.get("early_stopping", 0)):
        out.append(Suggestion("Stop at the best epoch and restore its weights", ("--early-stopping", "3")))
    out.append(Suggestion("Get more training data, or use a smaller model."))
    return out


def undertrained(config: dict[str, Any] | None, still_falling: bool) -> list[Suggestion]:
    why = "both curves were still improving" if still_falling else "too few epochs to see where the curves go"
    if config is None:
        return [Suggestion(f"Train for more epochs (--epochs): {why}."), *lr_suggestions(None, lower=False)]
    epochs = int(config.get("epochs", 1))
    more = max(2 * epochs, epochs + 5)
    return [
        Suggestion(f"Train for more epochs ({why})", ("--epochs", str(more))),
        *lr_suggestions(config, lower=False),
    ]


def _bigger(config: dict[str, Any]) -> list[Suggestion]:
    model, args = config.get("model"), dict(config.get("model_args") or {})
    if model == "vgg" and "widths" in args:
        widths = [2 * w for w in args["widths"]]
        return [Suggestion("Use a wider network", ("--widths", ",".join(map(str, widths))))]
    if model in ("vgg", "resnet"):
        depth, width = int(args.get("depth", 3)), int(args.get("width", 32 if model == "vgg" else 16))
        return [
            Suggestion("Use a deeper network", ("--depth", str(depth + 1))),
            Suggestion("Use a wider network", ("--width", str(2 * width))),
        ]
    return [
        Suggestion(
            "Use a deeper and wider topology",
            ("--model", "vgg", "--depth", "3", "--width", "32"),
            fallback="Use a deeper or wider topology (e.g. the zoo's vgg or resnet).",
        )
    ]


def underfitting(config: dict[str, Any] | None) -> list[Suggestion]:
    if config is None:
        return [
            Suggestion("Use a deeper or wider model (e.g. a vgg or resnet from the zoo)."),
            Suggestion("Train longer (--epochs); reduce regularization (dropout, weight decay)."),
            Suggestion("Check the inputs are normalized and the labels are right."),
        ]
    out = _bigger(config)
    if float((config.get("model_args") or {}).get("dropout", 0.0)) > 0:
        out.append(Suggestion("Drop the dropout", ("--dropout", "0")))
    if float(config.get("weight_decay", 0.0)) > 0:
        out.append(Suggestion("Drop the weight decay", ("--weight-decay", "0")))
    if float(config.get("label_smoothing", 0.0)) > 0:
        out.append(Suggestion("Drop the label smoothing", ("--label-smoothing", "0")))
    epochs = int(config.get("epochs", 1))
    out += [
        Suggestion("Train longer", ("--epochs", str(max(2 * epochs, epochs + 5)))),
        *lr_suggestions(config, False),
    ]
    out.append(Suggestion("Check the labels are right."))
    return out


def good_fit(config: dict[str, Any] | None, settled: str = "settled") -> list[Suggestion]:
    """The advice of a good fit; ``settled``: "settled" (the training loss has), "training"
    (98% training accuracy, the loss still falling) or "validation" (the validation loss has)."""
    text = config is not None and is_text_data(str(config.get("data", "")))
    further = "pretrained word vectors (--vectors)" if text else "augmentation with a larger model"
    state = {
        "settled": "The curves agree and have settled.",
        "training": (
            "The curves agree. The loss still falls, but at 98%+ training accuracy more epochs add "
            "confidence, not accuracy."
        ),
        "validation": "The validation loss has settled: more epochs would mostly lower the training loss.",
    }[settled]
    return [
        Suggestion(
            f"{state} To go further: tune the learning rate and batch size (cnnlab tune), or try {further}."
        )
    ]
