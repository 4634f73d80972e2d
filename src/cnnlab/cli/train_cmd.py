"""``cnnlab train``: train a CNN and write a run folder (defaults: `small_bn` on `digits`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from cnnlab.dashboard.server import keep_serving, start_beside
from cnnlab.errors import CnnlabError
from cnnlab.train.analysis.diagnose import diagnose_run
from cnnlab.train.evaluation.evaluate import tta_warning
from cnnlab.train.loop.checkpoint import TrainingInterrupted
from cnnlab.train.loop.distributed import is_main_process
from cnnlab.train.runs.config import (
    FLAGS,
    MODEL_FLAGS,
    TrainConfig,
    apply_options,
    check_config_values,
    option_key,
)
from cnnlab.train.runs.files import BEST_CONFIG_FILE, CONFIG_FILE
from cnnlab.train.runs.recipes import RECIPES, recipe
from cnnlab.train.runs.run import default_run_dir, train_run
from cnnlab.viz.report import write_report


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run folder", description=__doc__)
    for flag, (_, kind, text) in FLAGS.items():
        if kind is bool:  # a switch (--compile): given means True
            p.add_argument(flag, action="store_const", const=True, default=None, help=text)
        else:
            p.add_argument(flag, type=kind, default=None, help=text)
    for flag, parse in MODEL_FLAGS.items():
        text = f"model option {flag[2:]} (zoo models)"
        if flag == "--widths":
            text = (
                "vgg: channels of each block, e.g. 16,64 (replaces depth and width); textcnn: filter widths"
            )
        p.add_argument(flag, type=parse, default=None, help=text)
    p.add_argument(
        "--config",
        type=str,
        default=None,
        help="a config.json to start from (or a run or tune folder: its config)",
    )
    p.add_argument("--recipe", type=str, default=None, help=f"a named starting point: {', '.join(RECIPES)}")
    p.add_argument(
        "--resume",
        type=str,
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run from RUN_DIR/checkpoint.npz (same config)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its files, plots/ and report.html are deleted)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="write TensorBoard event files to RUN_DIR/tensorboard (pip install tensorboard)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip RUN_DIR/plots/ and report.html")
    p.add_argument(
        "--dashboard", action="store_true", help="serve `cnnlab dashboard` on the runs folder meanwhile"
    )
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then a --recipe, then the --config file, then the flags given.

    A ``--model`` other than the recipe's (or config's) drops their model options.
    """
    values: dict[str, Any] = recipe(args.recipe) if args.recipe else {}
    if args.config:
        values |= read_config_file(args.config)
        values.pop("out", None)  # a re-run writes a new run folder unless --out says otherwise
    if args.model is not None and args.model != values.get("model"):
        # a recipe's (or config's) model options belong to its model: --model resnet or a file
        # with --recipe fashion must not get the recipe's vgg widths
        values.pop("model_args", None)
    values = apply_options(values, {flag: getattr(args, option_key(flag)) for flag in [*FLAGS, *MODEL_FLAGS]})
    if args.tensorboard:
        values["tensorboard"] = True
    return TrainConfig.from_dict(values)


def read_config_file(name: str) -> dict[str, Any]:
    """The keys of a config.json, each checked for its type (the messages name file and key).

    A folder stands for its config.json (a run folder) or best_config.json (a tune folder).
    """
    path = Path(name)
    if path.is_dir():
        path = next((path / f for f in (CONFIG_FILE, BEST_CONFIG_FILE) if (path / f).is_file()), path)
    if path.is_dir():
        raise FileNotFoundError(
            f"--config: {path} is a folder without {CONFIG_FILE} (a run's) or {BEST_CONFIG_FILE}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"--config: no such file {path}")
    return _checked_json(path, f"--config {path}", f"--config {path}: not valid JSON")


def _checked_json(path: Path, where: str, not_json: str) -> dict[str, Any]:
    """The config keys in JSON file ``path``, each checked for its type (messages name ``where``)."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{not_json}: {exc}") from None
    check_config_values(values, where)
    return dict(values)


def resume_config(run_dir: str, args: argparse.Namespace) -> TrainConfig:
    """The saved config of ``run_dir``; options that would change the run are refused.

    An option equal to the saved value (e.g. the same ``--backend``) changes nothing and is
    accepted.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no {CONFIG_FILE} in {run_dir} (is it a run folder?)")
    values = _checked_json(path, f"--resume: {path}", f"--resume: {path} is not valid JSON")
    values["out"] = str(run_dir)
    saved = TrainConfig.from_dict(values)
    changed = [flag for flag in ("--config", "--recipe") if getattr(args, flag[2:]) is not None]
    for flag in [*FLAGS, *MODEL_FLAGS]:
        given = getattr(args, option_key(flag))
        if given is None:
            continue
        if flag in FLAGS:
            now = getattr(saved, FLAGS[flag][0])
            same = given == now
            if flag in ("--out", "--data", "--data-dir") and now is not None:  # relative vs. saved absolute
                same = same or Path(given).resolve() == Path(now).resolve()
        else:
            now = saved.model_args.get(option_key(flag))
            same = given == now
        if not same:
            changed.append(f"{flag} {given} (the run has {now})")
    if changed:
        raise ValueError(f"--resume continues the saved config unchanged; drop {', '.join(changed)}")
    if args.tensorboard:  # logging changes nothing in the run itself
        saved = dataclasses.replace(saved, tensorboard=True)
    return saved


def run(args: argparse.Namespace) -> int:
    # The run folder stays locked until the report is written, whatever happens.
    with contextlib.ExitStack() as hold:
        return _train_and_report(args, hold)


def _train_and_report(args: argparse.Namespace, hold: contextlib.ExitStack[Any]) -> int:
    config = resume_config(args.resume, args) if args.resume else resolve_config(args)
    # Under torchrun every process runs this command; only rank 0 reports.
    main = is_main_process(config.backend)
    if main:
        announce(config)
    dashboard, default_dir = open_dashboard(config) if args.dashboard and main else (None, None)
    try:
        result = train_run(
            config,
            verbose=not args.quiet,
            resume=bool(args.resume),
            overwrite=args.overwrite,
            hold=hold,
            default_dir=default_dir,
        )
    except TrainingInterrupted as exc:  # Ctrl-C: the last finished epoch is saved
        print(str(exc), file=sys.stderr)
        return 130
    if not main:
        return 0
    tta = ""
    if "accuracy_without_tta" in result.metrics:
        tta = f"  [{result.metrics['tta']} TTA; without: {result.metrics['accuracy_without_tta']:.4f}]"
    print(
        f"test accuracy: {result.test_accuracy:.4f}  test loss: {result.test_loss:.4f}  "
        f"({result.seconds:.1f} s){tta}"
    )
    print(f"run folder: {result.run_dir}")

    warning = tta_warning(config.tta, config.augment, result.metrics, config.data)
    if warning:  # e.g. --tta flip on digits: a mirrored 2 is not a 2
        warnings.warn(warning, UserWarning, stacklevel=1)
    return diagnose_report_and_serve(result.run_dir, args.no_plots, dashboard)


# ---- the steps an image run and a text run share (cli/text_cmds.py uses them too) ------------
def announce(config: TrainConfig) -> None:
    """The resolved config, one line, before anything else happens."""
    values = dataclasses.asdict(config).items()
    print("cnnlab train: " + ", ".join(f"{k}={v}" for k, v in values if v not in (None, {})))


def open_dashboard(config: TrainConfig) -> tuple[Any, Path | None]:
    """Start the live page of the runs folder; ``(dashboard, default_dir)`` for the run."""
    # The page's link names the run before its folder exists; a default name stays a
    # default (NAME-2 if another run takes it first), not an --out that refuses a taken one.
    default_dir = None if config.out else default_run_dir()
    planned = Path(config.out) if config.out else default_dir
    assert planned is not None
    dashboard = start_beside(planned)
    print(f"dashboard: {dashboard.url}#run={planned.name}", flush=True)
    return dashboard, default_dir


def diagnose_report_and_serve(run_dir: Path, no_plots: bool, dashboard: Any) -> int:
    """Print the diagnosis, write the report (unless --no-plots), keep the dashboard up."""
    print(diagnose_run(run_dir))
    if not no_plots:
        try:
            # PCA keeps this quick; `cnnlab plot RUN_DIR` adds t-SNE when scikit-learn is there.
            print(f"report: {write_report(run_dir, tsne=False)}")
        except CnnlabError as exc:  # e.g. matplotlib not installed: the run itself is saved
            print(f"plots skipped: {exc}", file=sys.stderr)
        except KeyboardInterrupt:  # training is over and saved: say so, not just "interrupted"
            print(
                f"cnnlab train: interrupted while writing the report; the trained run is saved in "
                f"{run_dir}. Write the report with: cnnlab plot {run_dir}",
                file=sys.stderr,
            )
            return 130
    if dashboard is not None:
        keep_serving(dashboard)
    return 0
