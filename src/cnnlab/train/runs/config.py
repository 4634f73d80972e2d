"""The training options, stated once: ``TrainConfig`` and the ``cnnlab train`` flags that set it.

- ``TrainConfig``: everything that defines a run (saved as the run folder's ``config.json``);
  ``KINDS`` holds the type of each key, read from its annotation as a real type;
- ``check_values``: a JSON object of config keys checked by key and type, with messages in
  JSON's words (the values usually come from a file);
- ``FLAGS`` / ``MODEL_FLAGS``: the ``cnnlab train`` option of each config key and of each zoo
  model argument, and ``apply_options``, the rule that applies them to a config. The CLI
  builds its parser from these tables; the advice checker applies the options it suggests
  with them; tune and the dashboard read ``TrainConfig``.

Example:
    >>> check_values({"epochs": "three"}, {"epochs": int}, "--config c.json")
    Traceback (most recent call last):
    ...
    ValueError: --config c.json: key `epochs` must be an int (a whole number). Received: "three" (a string)
"""

from __future__ import annotations

import argparse
import json
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.datasets import DATASETS
from cnnlab.models.zoo import MODELS, model_options, names_text, options_table
from cnnlab.optim import OPTIMIZERS
from cnnlab.optim.adam import AdamW
from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau, StepLR
from cnnlab.train.evaluation.evaluate import TTA_MODES
from cnnlab.train.loop.engines import BACKENDS, DEVICES
from cnnlab.train.runs.finetune import is_pretrained
from cnnlab.utils import or_list

#: The optimizers whose weight decay is decoupled (AdamW's rule), and those where it is L2.
DECOUPLED_DECAY = [name for name, cls in OPTIMIZERS.items() if issubclass(cls, AdamW)]
L2_DECAY = [name for name in OPTIMIZERS if name not in DECOUPLED_DECAY]
#: The learning-rate schedules (``cnnlab.optim.schedules``) a run can name, each with its builder:
#: ``SCHEDULES[name](optimizer, epochs)`` is the schedule of a run of ``epochs`` (None for "none").
SCHEDULES: dict[str, Callable[[Any, int], Any]] = {
    "none": lambda optimizer, epochs: None,
    "cosine": lambda optimizer, epochs: CosineWarmup(
        optimizer, total_epochs=epochs, warmup_epochs=min(1, epochs - 1)
    ),
    "step": lambda optimizer, epochs: StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1),
    "plateau": lambda optimizer, epochs: ReduceLROnPlateau(optimizer, factor=0.5, patience=2),
}


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    data: str = "digits"
    data_dir: str | None = None
    model: str = "small_bn"
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0  # the training loss's target: (1 - eps) y + eps / K
    schedule: str = "cosine"
    val_split: float = 0.1
    early_stopping: int = 0
    augment: str = "none"
    tta: str = "none"  # test-time augmentation of the final evaluation: none or flip
    seed: int = 0
    out: str | None = None
    backend: str = "numpy"  # "torch": cnnlab.train.loop.engines.torch_engine (also under torchrun)
    device: str = "cpu"  # "cuda" needs backend "torch"
    compile: bool = False  # torch.compile the module (backend "torch"; issue 25)
    tensorboard: bool = False  # event files in RUN/tensorboard (cnnlab.train.loop.tensorboard)
    # Transfer learning (cnnlab.train.runs.finetune), with --model a trained model file or run:
    freeze: str | None = None  # layers kept as trained: an index, a node name or all-but-head
    new_head: bool = False  # a fresh classifier for the data's classes

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        """A config from JSON-like ``values``; unknown keys and wrong types are refused by name.

        Example:
            >>> TrainConfig.from_dict({"epochs": "three"})
            Traceback (most recent call last):
            ...
            ValueError: config: key `epochs` must be an int (a whole number). Received: "three" (a string)
        """
        check_config_values(values, where)
        floats: dict[str, Any] = {k: float(v) for k, v in values.items() if KINDS[k] is float}
        return cls(**(values | floats))

    def validate(self) -> None:
        """Refuse impossible values, each named by its config key and its `cnnlab train` option."""
        for name, kind in KINDS.items():  # the Python API skips from_dict: check the types too
            check_type("train", name, kind, getattr(self, name))
        if self.epochs < 1:
            raise _bad("epochs", "a positive int", self.epochs)
        if self.batch_size < 1:
            raise _bad("batch_size", "a positive int", self.batch_size)
        if not self.lr > 0 or not np.isfinite(self.lr):
            raise _bad("lr", "a positive finite float", self.lr)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise _bad("label_smoothing", "in [0, 1)", self.label_smoothing)
        if not 0.0 <= self.val_split < 1.0:
            raise _bad("val_split", "in [0, 1)", self.val_split)
        if self.early_stopping < 0:
            raise _bad("early_stopping", "an int >= 0 (patience in epochs; 0: off)", self.early_stopping)
        if self.early_stopping > 0 and self.val_split == 0:
            expected = "0 when val_split is 0 (it watches the validation loss)"
            raise _bad("early_stopping", expected, self.early_stopping)
        if self.seed < 0:
            raise _bad("seed", "an int >= 0", self.seed)
        if self.schedule not in SCHEDULES:
            raise _bad("schedule", f"one of {', '.join(SCHEDULES)}", self.schedule)
        if self.tta not in TTA_MODES:
            raise _bad("tta", f"one of {', '.join(TTA_MODES)}", self.tta)
        if self.backend not in BACKENDS:
            raise _bad("backend", " or ".join(BACKENDS), self.backend)
        if self.device not in DEVICES or (self.device == "cuda" and self.backend != "torch"):
            raise _bad("device", "cpu, or cuda with --backend torch", self.device)
        if self.compile and self.backend != "torch":
            raise _bad("compile", "false unless --backend torch (torch.compile compiles PyTorch)", True)
        if (self.freeze is not None or self.new_head) and not is_pretrained(self.model):
            option = "freeze" if self.freeze is not None else "new_head"
            expected = "used with --model a trained model (.npz, .onnx or a run folder) to fine-tune"
            raise _bad(option, expected, self.freeze if self.freeze is not None else True)
        if self.model_args and is_pretrained(self.model):
            raise _bad(
                "model_args",
                f"empty for the trained model {self.model} (--depth, --width, --widths, --dropout "
                "and --batch-norm are options of the zoo models)",
                self.model_args,
            )
        if self.model_args and is_model_file(self.model):
            raise _bad(
                "model_args",
                f"empty for the architecture file {self.model} (--depth, --width, --widths, --dropout "
                "and --batch-norm are options of the zoo models; edit the file instead)",
                self.model_args,
            )
        if self.model in MODELS:
            check_model_options(self.model, self.model_args)
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            what = "is a file, not a folder" if Path(self.data_dir).exists() else "does not exist"
            raise _bad("data_dir", f"an existing folder ({self.data_dir} {what})", self.data_dir)


#: The type of each config key: its annotation as a type (``int``, ``str | None``, ...).
KINDS: dict[str, Any] = typing.get_type_hints(TrainConfig)


def is_model_file(model: str) -> bool:
    """Whether ``model`` names an architecture file (YAML/JSON) rather than a zoo model."""
    return os.path.splitext(model)[1].lower() in (".yaml", ".yml", ".json")


def describe_model(config: TrainConfig) -> str:
    """The model as the user named it, e.g. ``vgg(depth=99)``."""
    return f"{config.model}({', '.join(f'{k}={v}' for k, v in config.model_args.items())})"


def check_config_values(values: Any, where: str = "config") -> None:
    """Refuse a config that is not an object, has unknown keys, or values of the wrong type."""
    check_values(values, KINDS, where)


def check_model_options(model: str, model_args: dict[str, Any]) -> None:
    """Refuse options zoo model ``model`` does not take, naming which model takes which.

    Issue 23 item 13: ``--model small --dropout 0.3`` said ``small() got an unexpected
    keyword argument 'dropout'``. The options come from the zoo functions' signatures.
    """
    takes = model_options(model)
    unknown = [key for key in model_args if key not in takes]
    if not unknown:
        return
    flags = ", ".join(f"--{key.replace('_', '-')}" for key in unknown)
    verb = "is not an option" if len(unknown) == 1 else "are not options"
    raise ValueError(
        f"train: {flags} {verb} of model {model} (it takes {', '.join(takes) or 'no options'}). "
        f"Options of each model: {options_table()}"
    )


def _bad(name: str, expected: str, value: Any) -> ValueError:
    """``arg_error`` for config key ``name``, naming its `cnnlab train` option too."""
    # model_args comes from the model options (--depth, --width, ...), named in `expected`
    option = "" if name == "model_args" else f" (option --{name.replace('_', '-')})"
    return ValueError(f"train: argument `{name}` must be {expected}. Received: {name}={value!r}{option}")


# ---- types of config values, checked with messages in JSON's words --------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


#: Each type a config key can have: how a value is checked, and what it is called in a message.
TYPES: dict[Any, tuple[Callable[[Any], bool], str]] = {
    int: (_is_int, "an int (a whole number)"),
    float: (_is_number, "a number"),
    str: (lambda value: isinstance(value, str), "a string"),
    bool: (lambda value: isinstance(value, (bool, np.bool_)), "true or false"),
    str | None: (lambda value: value is None or isinstance(value, str), "a string or null"),
    dict[str, Any]: (lambda value: isinstance(value, dict), "an object (key: value pairs)"),
}


def json_type(value: Any) -> str:
    """What ``value`` is called in JSON: "a string", "a list", "null", ..."""
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), "a " + type(value).__name__)


def check_type(where: str, name: str, kind: Any, value: Any) -> None:
    """Raise a ValueError naming key ``name`` if ``value`` is not of type ``kind`` (a key of TYPES)."""
    ok, expected = TYPES[kind]
    if not ok(value):
        raise ValueError(
            f"{where}: key `{name}` must be {expected}. Received: "
            + ("null" if value is None else f"{json.dumps(value, default=repr)} ({json_type(value)})")
        )


def check_values(values: Any, kinds: dict[str, Any], where: str) -> None:
    """Refuse ``values`` if not a dict, with keys not in ``kinds``, or of the wrong type."""
    if not isinstance(values, dict):
        raise ValueError(
            f'{where}: must be a JSON object of config keys (e.g. {{"epochs": 3}}). '
            f"Received: {json_type(values)}"
        )
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}. Valid keys: {', '.join(sorted(kinds))}")
    for name, value in values.items():
        check_type(where, name, kinds[name], value)


# ---- the `cnnlab train` options ------------------------------------------------------------
#: Option -> (TrainConfig key, type, help); options left out keep the config's value.
FLAGS: dict[str, tuple[str, type, str]] = {
    "--data": ("data", str, f"dataset ({', '.join(DATASETS)}), image folder, or text:PATH"),
    "--data-dir": ("data_dir", str, "where the dataset files are"),
    "--model": (
        "model",
        str,
        f"zoo name ({names_text()}), a YAML/JSON file, or a trained model to "
        "fine-tune (.npz, .onnx, run folder)",
    ),
    "--epochs": ("epochs", int, "number of epochs"),
    "--batch-size": ("batch_size", int, "examples per step"),
    "--optimizer": ("optimizer", str, or_list(OPTIMIZERS)),
    "--lr": ("lr", float, "learning rate"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": (
        "weight_decay",
        float,
        f"L2 ({', '.join(L2_DECAY)}) or decoupled ({', '.join(DECOUPLED_DECAY)}) weight decay",
    ),
    "--label-smoothing": ("label_smoothing", float, "training target (1 - eps) y + eps / classes (0: off)"),
    "--schedule": ("schedule", str, f"learning-rate schedule: {', '.join(SCHEDULES)}"),
    "--val-split": ("val_split", float, "fraction of the training split held out for validation"),
    "--early-stopping": ("early_stopping", int, "patience in epochs (0: off)"),
    "--augment": (
        "augment",
        str,
        "training augmentation: none or a list of shift,crop,flip,rotate,erase,noise",
    ),
    "--tta": ("tta", str, "test-time augmentation of the test evaluation: none or flip (image + mirror)"),
    "--seed": ("seed", int, "seed for weights, shuffling and augmentation"),
    "--out": ("out", str, "run folder (default runs/<timestamp>)"),
    "--backend": ("backend", str, " or ".join(f"{name} ({what})" for name, what in BACKENDS.items())),
    "--device": ("device", str, f"{' or '.join(DEVICES)} (with --backend torch)"),
    "--compile": (
        "compile",
        bool,
        "a switch: torch.compile the model (with --backend torch; compile seconds on the epoch's line)",
    ),
    "--freeze": (
        "freeze",
        str,
        "fine-tuning: keep the layers up to UPTO as trained (a Sequential's index, a Graph's node, "
        "or all-but-head)",
    ),
    "--new-head": ("new_head", bool, "a switch: fine-tuning: a new classifier for the data's classes"),
}


def on_off(text: str) -> bool:
    """`on`/`off` (also 1/0, true/false, yes/no) for switches such as --batch-norm."""
    value = text.strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off. Received: {text!r}")


def int_list(text: str) -> list[int]:
    """`16,64` -> [16, 64] for --widths (channels of each VGG block)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ints such as 16,64. Received: {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints such as 16,64. Received: {text!r}")
    return values


#: Option -> type of the zoo models' arguments (``TrainConfig.model_args``).
MODEL_FLAGS: dict[str, Callable[[str], Any]] = {
    "--depth": int,
    "--width": int,
    "--widths": int_list,
    "--dropout": float,
    "--batch-norm": on_off,
    "--embedding-dim": int,  # textcnn (cnnlab.models.textcnn)
    "--maps": int,
    "--vectors": str,
}


def option_key(flag: str) -> str:
    """The key an option sets: ``--batch-size`` -> ``batch_size``."""
    return flag[2:].replace("-", "_")


def apply_options(values: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Config ``values`` with the options in ``given`` (option -> parsed value; None: not given).

    A ``--depth`` or ``--width`` without ``--widths`` replaces per-block widths (e.g. a
    recipe's); the block count stays.

    Example:
        >>> apply_options({"model_args": {"widths": [16, 64]}}, {"--width": 8, "--lr": 0.1})
        {'model_args': {'depth': 2, 'width': 8}, 'lr': 0.1}
    """
    new = dict(values)
    for flag, (name, _, _) in FLAGS.items():
        if given.get(flag) is not None:
            new[name] = given[flag]
    model_args = dict(new.get("model_args") or {})
    depth_or_width = given.get("--depth") is not None or given.get("--width") is not None
    if depth_or_width and given.get("--widths") is None and "widths" in model_args:
        model_args.setdefault("depth", len(model_args.pop("widths")))
    for flag in MODEL_FLAGS:
        if given.get(flag) is not None:
            model_args[option_key(flag)] = given[flag]
    new["model_args"] = model_args
    return new
