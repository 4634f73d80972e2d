"""``cnnlab train``: train a CNN and write a run folder (defaults: `small_bn` on `digits`)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

from cnnlab.train.runs.files import BEST_CONFIG_FILE, CONFIG_FILE
from cnnlab.train.runs.recipes import RECIPES
from cnnlab.train.runs.run import SCHEDULES, TrainConfig, check_config_values, train_run

# CLI flag -> TrainConfig field (flags left out keep the config file's or default value).
FLAGS: dict[str, tuple[str, type, str]] = {
    "--data": ("data", str, "dataset name (digits, mnist, fashion-mnist, cifar10) or image folder"),
    "--data-dir": ("data_dir", str, "where the dataset files are"),
    "--model": ("model", str, "zoo name (lenet5, small, small_bn, vgg, resnet) or a YAML/JSON file"),
    "--epochs": ("epochs", int, "number of epochs"),
    "--batch-size": ("batch_size", int, "examples per step"),
    "--optimizer": ("optimizer", str, "sgd, adam or adamw"),
    "--lr": ("lr", float, "learning rate"),
    "--momentum": ("momentum", float, "SGD momentum"),
    "--weight-decay": ("weight_decay", float, "L2 (sgd, adam) or decoupled (adamw) weight decay"),
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
    "--backend": ("backend", str, "numpy (cnnlab's engine) or torch (PyTorch; also under torchrun)"),
    "--device": ("device", str, "cpu or cuda (with --backend torch)"),
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


MODEL_FLAGS: dict[str, Any] = {
    "--depth": int,
    "--width": int,
    "--widths": int_list,
    "--dropout": float,
    "--batch-norm": on_off,
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run folder", description=__doc__)
    for flag, (_, kind, text) in FLAGS.items():
        p.add_argument(flag, type=kind, default=None, help=text)
    for flag, kind in MODEL_FLAGS.items():
        text = f"model option {flag[2:]} (zoo models)"
        if flag == "--widths":
            text = "vgg: channels of each block, e.g. 16,64 (replaces depth and width)"
        p.add_argument(flag, type=kind, default=None, help=text)
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
    from cnnlab.train.runs.recipes import recipe

    values: dict[str, Any] = recipe(args.recipe) if args.recipe else {}
    if args.config:
        values |= read_config_file(args.config)
        values.pop("out", None)  # a re-run writes a new run folder unless --out says otherwise
    if args.model is not None and args.model != values.get("model"):
        # a recipe's (or config's) model options belong to its model: --model resnet or a file
        # with --recipe fashion must not get the recipe's vgg widths
        values.pop("model_args", None)
    for flag, (name, _, _) in FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            values[name] = value
    model_args = dict(values.get("model_args", {}))
    if (args.depth is not None or args.width is not None) and args.widths is None and "widths" in model_args:
        # --depth/--width replace per-block widths (e.g. a recipe's); the block count stays
        model_args.setdefault("depth", len(model_args.pop("widths")))
    for flag in MODEL_FLAGS:
        key = flag[2:].replace("-", "_")
        value = getattr(args, key)
        if value is not None:
            model_args[key] = value
    values["model_args"] = model_args
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
        given = getattr(args, flag[2:].replace("-", "_"))
        if given is None:
            continue
        if flag in FLAGS:
            now = getattr(saved, FLAGS[flag][0])
            same = Path(given).resolve() == Path(now).resolve() if flag == "--out" else given == now
        else:
            now = saved.model_args.get(flag[2:].replace("-", "_"))
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
    import sys

    from cnnlab.train.loop.checkpoint import TrainingInterrupted
    from cnnlab.train.loop.distributed import is_main_process

    config = resume_config(args.resume, args) if args.resume else resolve_config(args)
    # Under torchrun every process runs this command; only rank 0 reports.
    main = config.backend != "torch" or is_main_process()
    if main:
        print(
            "cnnlab train: "
            + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if v not in (None, {}))
        )
    dashboard, default_dir = None, None
    if args.dashboard and main:  # a live page of the runs folder (cnnlab.dashboard)
        from cnnlab.dashboard.server import start_beside
        from cnnlab.train.runs.run import default_run_dir

        # The page's link names the run before its folder exists; a default name stays a
        # default (NAME-2 if another run takes it first), not an --out that refuses a taken one.
        default_dir = None if config.out else default_run_dir()
        planned = Path(config.out) if config.out else default_dir
        assert planned is not None
        dashboard = start_beside(planned)
        print(f"dashboard: {dashboard.url}#run={planned.name}", flush=True)
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
    from cnnlab.train.evaluation.evaluate import tta_warning

    warning = tta_warning(config.tta, config.augment, result.metrics)
    if warning:  # e.g. --tta flip on digits: a mirrored 2 is not a 2
        warnings.warn(warning, UserWarning, stacklevel=1)
    from cnnlab.train.analysis.diagnose import diagnose_run

    print(diagnose_run(result.run_dir))
    if not args.no_plots:
        from cnnlab.errors import CnnlabError
        from cnnlab.viz.report import write_report

        try:
            # PCA keeps this quick; `cnnlab plot RUN_DIR` adds t-SNE when scikit-learn is there.
            print(f"report: {write_report(result.run_dir, tsne=False)}")
        except CnnlabError as exc:  # e.g. matplotlib not installed: the run itself is saved
            print(f"plots skipped: {exc}", file=sys.stderr)
    if dashboard is not None:
        from cnnlab.dashboard.server import keep_serving

        keep_serving(dashboard)
    return 0
