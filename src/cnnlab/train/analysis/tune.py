"""Hyperparameter search with Optuna: the job behind ``cnnlab tune`` ("1. tune parameters").

Every trial is one ``train_run`` with sampled hyperparameters, in its own run folder.
A trial reports its validation accuracy after every epoch; the median pruner stops
trials that are worse than the median of earlier trials at the same epoch. Model
selection uses validation accuracy only (``train_run`` still writes each completed trial's
test metrics to its metrics.json, but the search never reads them). The study
lives in a database (default ``sqlite:///OUT/study.db``), so running again resumes it::

    OUT/
      study.db           the Optuna study (all trials, every session)
      trials/0000/       one run folder per trial (config.json, model.npz, history.csv,
                         metrics.json when it completed) plus trial.json (state, params, value)
      best_config.json   the best trial's TrainConfig: `cnnlab train --config` reproduces it

Search space file (``--space FILE.yaml``, or .json): a mapping whose keys are TrainConfig
fields (``lr``, ``batch_size``, ``optimizer``, ``weight_decay``, ``augment``, ``model``,
``schedule``, ...) or ``model_args.NAME`` (an argument of the zoo model, e.g.
``model_args.width``). Each entry replaces the default entry of the same name::

    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}   # float, optional log / step
    model_args.depth: {type: int, low: 1, high: 3}           # int, optional log / step
    optimizer: {type: categorical, choices: [sgd, adam]}     # one of a list
    batch_size: [32, 64]                                     # a list: same as categorical
    schedule: cosine                                         # a plain value: fixed
    model_args.dropout: null                                 # null: drop from the space

The default model is ``vgg`` (searched: depth, width, dropout). Another ``model`` needs
``model_args`` entries it accepts, e.g. ``model: resnet`` with ``model_args.dropout: null``.
``augment: on`` means the dataset's usual augmentation (``AUGMENT_ON``).
Text data (``--data text:PATH``, issue 27) starts from ``TEXT_SPACE`` instead: ``textcnn``
with its dropout, maps and embedding size, and no augmentation; each trial is a text run. ``data``,
``data_dir``, ``epochs`` and ``out`` come from the command line only. (YAML reads ``1e-4``
without a dot as text: bounds are converted with ``float``, so both spellings work.)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.data import load_dataset
from cnnlab.data.datasets import MIRROR_SAFE
from cnnlab.data.text import is_text_data, load_text, parse_spec
from cnnlab.errors import CnnlabError, arg_error, check_int
from cnnlab.jsonfile import read_json
from cnnlab.optim import OPTIMIZERS
from cnnlab.train.loop.callbacks import Callback, TrainContext
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.history import write_atomic
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.files import BEST_CONFIG_FILE, CONFIG_FILE
from cnnlab.train.runs.run import train_run
from cnnlab.train.runs.runlock import locked
from cnnlab.train.runs.text_run import train_text_run

INSTALL_HINT = "pip install optuna (or pip install cnnlab[tune])"
DEFAULT_SPACE: dict[str, Any] = {
    "model": "vgg",
    "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
    "batch_size": [32, 64, 128],
    "optimizer": list(OPTIMIZERS),  # sgd, adam, adamw
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "model_args.dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "model_args.width": [8, 16, 32],
    "model_args.depth": {"type": "int", "low": 1, "high": 3},
    "augment": ["none", "on"],
}
#: The default space for text data: Kim's textcnn around its defaults (no augmentation for ids).
TEXT_SPACE: dict[str, Any] = {
    "model": "textcnn",
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": [32, 50, 64],
    "optimizer": ["adam", "adamw"],
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
    "model_args.dropout": {"type": "float", "low": 0.2, "high": 0.6},
    "model_args.maps": [50, 100],
    "model_args.embedding_dim": [64, 128],
}
# What "augment: on" means per dataset: crops for CIFAR-10, shifts elsewhere, and flips where the
# dataset is MIRROR_SAFE (no flips for digits: a mirrored 2 is not a 2); "shift" for any other data.
AUGMENT_ON = {name: ("crop" if name == "cifar10" else "shift") + ",flip" for name in MIRROR_SAFE}
COMMAND_LINE_ONLY = ("data", "data_dir", "epochs", "out")
TABLE_HEADER = f"{'trial':>6} {'state':<9} {'val_acc':>7} {'seconds':>8}  params"


def require_optuna() -> Any:
    """Import Optuna, or raise a CnnlabError that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise CnnlabError(f"hyperparameter search needs Optuna: {INSTALL_HINT}") from None
    return optuna


def load_space(path: str | Path | None = None, text: bool = False) -> dict[str, Any]:
    """The default search space (``TEXT_SPACE`` for text data), with the entries of the
    YAML/JSON file at ``path`` replacing it.

    Example:
        >>> load_space()["lr"]
        {'type': 'float', 'low': 0.0001, 'high': 0.03, 'log': True}
    """
    space = dict(TEXT_SPACE if text else DEFAULT_SPACE)
    if path is None:
        return space
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--space: no such file {p}")
    if p.suffix.lower() == ".json":
        values = read_json(p)
    else:
        try:
            import yaml
        except ImportError:
            raise CnnlabError("reading a YAML space needs PyYAML: pip install pyyaml") from None
        values = yaml.safe_load(p.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"space {p}: must be a mapping of name -> entry. Received: {values!r}")
    for name, entry in values.items():
        _check_entry(str(p), name, entry)
        if entry is None:
            space.pop(name, None)
        else:
            space[name] = entry
    return space


def _check_entry(where: str, name: str, entry: Any) -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_args"}
    if name in COMMAND_LINE_ONLY:
        raise ValueError(f"space {where}: `{name}` comes from the command line, not the space file")
    if name not in fields and not name.startswith("model_args."):
        raise ValueError(
            f"space {where}: unknown name `{name}`. Valid: model_args.NAME or {', '.join(sorted(fields))}"
        )
    if not isinstance(entry, dict):
        return
    kind = entry.get("type")
    if kind in ("float", "int") and not {"low", "high"} <= set(entry):
        raise arg_error(f"space {where}", name, f"a {kind} entry with `low` and `high`", entry)
    elif kind == "categorical" and not isinstance(entry.get("choices"), list):
        raise arg_error(f"space {where}", name, "a categorical entry with a `choices` list", entry)
    elif kind not in ("float", "int", "categorical"):
        raise arg_error(f"space {where}", name, "an entry of type float, int or categorical", entry)


def suggest(trial: Any, name: str, entry: Any) -> Any:
    """One value for ``name``: sampled through ``trial`` for a distribution, else ``entry`` itself."""
    if isinstance(entry, list):
        return trial.suggest_categorical(name, entry)
    if not isinstance(entry, dict):
        return entry
    if entry["type"] == "categorical":
        return trial.suggest_categorical(name, entry["choices"])
    if entry["type"] == "int":
        low, high, step = int(entry["low"]), int(entry["high"]), int(entry.get("step", 1))
        return trial.suggest_int(name, low, high, step=step, log=bool(entry.get("log", False)))
    float_step = None if entry.get("step") is None else float(entry["step"])
    low_f, high_f = float(entry["low"]), float(entry["high"])
    return trial.suggest_float(name, low_f, high_f, step=float_step, log=bool(entry.get("log", False)))


def suggest_config(trial: Any, space: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """A copy of ``base`` with every entry of ``space`` sampled (or fixed) through ``trial``."""
    values = dataclasses.asdict(base)
    model_args = dict(values["model_args"])
    for name, entry in space.items():
        value = suggest(trial, name, entry)
        if name.startswith("model_args."):
            model_args[name.split(".", 1)[1]] = value
        else:
            values[name] = value
    values["model_args"] = model_args
    if values["augment"] == "on":
        values["augment"] = AUGMENT_ON.get(values["data"], "shift")
    return TrainConfig.from_dict(values)


class PruningCallback(Callback):
    """Report ``monitor`` to the Optuna trial after every epoch; raise TrialPruned when told to.

    The run's CSVLogger runs first, so a pruned run folder keeps ``config.json``,
    ``history.csv`` up to the pruned epoch and ``model.npz`` (saved by ``train_run``).

    Args:
        trial: an ``optuna.Trial`` (anything with ``report(value, step)`` and ``should_prune()``).
        monitor: the History column to report.
    """

    def __init__(self, trial: Any, monitor: str = "val_accuracy") -> None:
        self.trial = trial
        self.monitor = monitor
        self.last_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        value = logs.get(self.monitor)
        if value is None or math.isnan(value):
            raise CnnlabError(f"tune: `{self.monitor}` is missing (val_split must be > 0)")
        self.trial.report(float(value), step=epoch)
        self.last_epoch = epoch
        if self.trial.should_prune():
            optuna = require_optuna()
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.monitor}={value:.4f}")


@dataclass
class TuneResult:
    """What ``tune`` did.

    Attributes:
        study: the Optuna study.
        out: the tune folder.
        best_config_path: ``best_config.json``, or None when no trial completed or the best
            trial is at chance level (no config worth re-running).
        table: every trial, one line each.
        chance: the validation accuracy of always guessing the most common class.
        at_chance: the best completed trial is not clearly above ``chance`` (see ``chance_bound``).
    """

    study: Any
    out: Path
    best_config_path: Path | None
    table: str
    chance: float = 0.0
    at_chance: bool = False


def chance_bound(y: Any, val_split: float) -> tuple[float, float]:
    """``(chance, bound)``: the accuracy of always guessing the most common class, and the
    validation accuracy a trial must beat to count as having learned something.

    The bound is chance plus two binomial standard errors of a validation part of
    ``ceil(val_split * N)`` images (at most halfway from chance to 1), so a trial that only
    guesses, and is lucky on a small validation part, is still called chance level.

    Example:
        >>> import numpy as np
        >>> chance, bound = chance_bound(np.repeat(np.arange(10), 144), 0.1)
        >>> round(chance, 3), round(bound, 3)
        (0.1, 0.15)
    """
    import numpy as np

    counts = np.bincount(np.asarray(y))
    chance = float(counts.max() / counts.sum())
    n_val = max(1, math.ceil(round(val_split * counts.sum(), 9)))
    margin = min(2.0 * math.sqrt(chance * (1.0 - chance) / n_val), (1.0 - chance) / 2.0)
    return chance, chance + margin


def tune(
    data: str = "digits",
    trials: int = 20,
    *,
    epochs: int = 10,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    space: dict[str, Any] | None = None,
    out: str | Path | None = None,
    data_dir: str | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> TuneResult:
    """Run ``trials`` more trials of the study, write ``best_config.json`` and return the table.

    Args:
        data: dataset name (as for ``cnnlab train``).
        trials: trials to run in this call (added to those already in the study).
        epochs: the most epochs a trial trains (pruned trials stop earlier).
        timeout: stop starting new trials after this many seconds.
        storage: an Optuna storage URL (default ``sqlite:///OUT/study.db``).
        study_name: default ``cnnlab-DATA``.
        space: the search space (default ``DEFAULT_SPACE``; see ``load_space``).
        out: the tune folder (default ``runs/tune-DATA``).
        data_dir: where the dataset files are.
        seed: seeds the sampler and every trial's training (same seed for all trials).
        verbose: print one line per trial and the table at the end.
    """
    optuna = require_optuna()

    check_int("tune", "trials", trials)
    check_int("tune", "epochs", epochs)
    if timeout is not None and not timeout > 0:
        raise arg_error("tune", "timeout", "a positive number of seconds", timeout)

    # The data first: a bad --data is one clear error, before any folder or study exists.
    base = TrainConfig(data=data, data_dir=data_dir, epochs=epochs, seed=seed)
    text = is_text_data(data)
    labels = load_text(data).y_train if text else load_dataset(data, root=data_dir).train.y
    chance, bound = chance_bound(labels, base.val_split)
    name = Path(parse_spec(data)[0]).name if text else Path(data).name  # text: no ?options
    out = Path(out) if out is not None else Path("runs") / f"tune-{name}"
    (out / "trials").mkdir(parents=True, exist_ok=True)
    # One tune at a time per folder: a second one started beside it would race the first for
    # the study database and the trial folders (sqlite: 'UNIQUE constraint failed').
    with locked(out):
        storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
        space = (TEXT_SPACE if text else DEFAULT_SPACE) if space is None else space

        study = optuna.create_study(
            storage=storage,
            study_name=study_name or f"cnnlab-{name}",
            direction="maximize",
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
            load_if_exists=True,
        )
        # Offset the seed by the trials already there: a resumed study must not redraw the same points.
        study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))

        if verbose:
            print(TABLE_HEADER, flush=True)
        study.optimize(
            functools.partial(_objective, space=space, base=base, out=out),
            n_trials=trials,
            timeout=timeout,
            catch=(TrainingDiverged,),
            callbacks=[functools.partial(_record, out=out, verbose=verbose)],
        )
        best_path, table, at_chance = _write_best(study, out, chance, bound)
        if verbose:
            print(table)
        return TuneResult(study, out, best_path, table, chance, at_chance)


def _objective(trial: Any, space: dict[str, Any], base: TrainConfig, out: Path) -> float:
    """One trial: a config drawn from ``space``, trained in ``out/trials/NNNN``; its val accuracy."""
    config = suggest_config(trial, space, base)
    run_dir = out / "trials" / f"{trial.number:04d}"
    if (run_dir / CONFIG_FILE).exists():
        raise CnnlabError(f"tune: {run_dir} already holds a run (another study?): use another --out")
    config.out = str(run_dir)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("config", dataclasses.asdict(config) | {"out": None})
    reporter = PruningCallback(trial)
    runner = train_text_run if is_text_data(config.data) else train_run
    result = runner(config, verbose=False, callbacks=[reporter])
    return float(result.history.last["val_accuracy"])


def _record(study: Any, frozen: Any, out: Path, verbose: bool) -> None:
    """After each trial: trial.json in its run folder, and one line on screen."""
    steps = frozen.intermediate_values
    run_dir = Path(frozen.user_attrs.get("run_dir", out / "trials" / f"{frozen.number:04d}"))
    info = {
        "number": frozen.number,
        "state": frozen.state.name,
        "val_accuracy": frozen.value if frozen.state.name == "COMPLETE" else None,
        "epochs_trained": max(steps) if steps else 0,
        "last_val_accuracy": steps[max(steps)] if steps else None,
        "params": frozen.params,
        "seconds": _seconds(frozen),
    }
    if run_dir.exists():
        write_atomic(run_dir / "trial.json", json.dumps(info, indent=2) + "\n")
    if verbose:
        print(_row(frozen), flush=True)


def _write_best(study: Any, out: Path, chance: float, bound: float) -> tuple[Path | None, str, bool]:
    """``(best_config.json or None, the trials table, whether the best is at chance level)``.

    The best completed trial's config is written unless its val accuracy is at chance level.
    """
    best_path = None
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(completed, key=lambda t: t.value) if completed else None
    at_chance = best is not None and best.value <= bound
    if best is not None and not at_chance:
        best_path = out / BEST_CONFIG_FILE
        write_atomic(best_path, json.dumps(best.user_attrs["config"], indent=2) + "\n")
    table = trials_table(study)
    if best is not None and at_chance:
        table += (
            f"\nno trial learned: the best val accuracy, {best.value:.4f}, is at chance level "
            f"({chance:.4f} by always guessing the most common class): no {BEST_CONFIG_FILE}"
        )
    return best_path, table, at_chance


def _seconds(frozen: Any) -> float | None:
    return None if frozen.duration is None else round(frozen.duration.total_seconds(), 2)


def _format(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _row(frozen: Any, best: int | None = None) -> str:
    value = "-" if frozen.value is None else f"{frozen.value:.4f}"
    seconds = _seconds(frozen)
    params = " ".join(f"{k}={_format(v)}" for k, v in frozen.params.items())
    mark = "*" if frozen.number == best else " "
    return f"{frozen.number:>5}{mark} {frozen.state.name:<9} {value:>7} {_format(seconds):>8}  {params}"


def trials_table(study: Any) -> str:
    """All trials of ``study``: number, state, val accuracy, seconds and params; * marks the best."""
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = max(completed, key=lambda t: t.value).number if completed else None
    lines = [TABLE_HEADER]
    lines += [_row(t, best) for t in study.trials]
    if best is None:
        lines.append("no trial has completed yet: no best_config.json")
    return "\n".join(lines)
