"""``cnnlab bench``: time a training step of cnnlab against PyTorch; print ratios.

Two modes: the model benchmark (``--models``, ``--batches``, ``--modes``: one step of a
reference model on random data, ``cli/benchmark.py``) and the recipe mode (``--recipe NAME``:
real training steps of ``cnnlab train --recipe NAME``, data and augmentation included, per
engine, ``cli/bench_recipe.py``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnlab import process
from cnnlab.cli import benchmark
from cnnlab.cli.bench_recipe import BENCH_RECIPES, DEFAULT_LINES, LINES, run_recipe
from cnnlab.errors import arg_error
from cnnlab.train.runs.recipes import RECIPES

#: Options of one mode only, with their defaults (None in the parser, so a given one is seen).
MODEL_OPTIONS: dict[str, Any] = {
    "--batches": "32,128,512",
    "--models": "small,resnet",
    "--modes": "train,forward",
    "--profile": False,
}
RECIPE_OPTIONS: dict[str, Any] = {
    "--steps": 10,
    "--data-dir": None,
    "--lines": ",".join(DEFAULT_LINES),
    "--epoch": False,
    "--compile": False,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``cnnlab bench`` (also used by ``benchmarks/bench_train_step.py``)."""
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 32,128,512)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--profile", action="store_true", help="per-layer breakdown of a cnnlab step")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument(
        "--models",
        default=None,
        help=f"comma-separated, from {', '.join(benchmark.MODELS)} (default small,resnet)",
    )
    p.add_argument("--modes", default=None, help="comma-separated: train, forward (default both)")
    p.add_argument(
        "--cpu-clock",
        action="store_true",
        help="one thread per library, timed by process CPU time (for a machine shared with other jobs)",
    )
    p.add_argument(
        "--recipe",
        default=None,
        metavar="NAME",
        help="time real training steps of `cnnlab train --recipe NAME` "
        f"({', '.join([*RECIPES, *BENCH_RECIPES])}; "
        "resnet: the fashion recipe with the zoo resnet): data, augmentation, forward, backward, update, "
        "for the NumPy engine, the torch engine and a plain PyTorch script",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="with --recipe: timed steps per engine and round (default 10)"
    )
    p.add_argument(
        "--data-dir", default=None, help="with --recipe: where the dataset files are (as in cnnlab train)"
    )
    p.add_argument(
        "--lines",
        default=None,
        help=f"with --recipe: comma-separated, from {', '.join(LINES)} (default {','.join(DEFAULT_LINES)})",
    )
    p.add_argument(
        "--epoch",
        action="store_true",
        help="with --recipe: time one whole epoch's steps per line (else --steps x --rounds, extrapolated)",
    )
    p.add_argument(
        "--compile", action="store_true", help="with --recipe: add the line torch-compile (torch.compile)"
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark a train step against PyTorch", description=__doc__)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise arg_error("bench", "--rounds", "a positive int", args.rounds)
    if args.recipe is not None:
        rows = _run_recipe(args)
    else:
        wrong = _given(args, RECIPE_OPTIONS)
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: only with --recipe NAME (time a recipe's training steps)")
        _fill_defaults(args, MODEL_OPTIONS)
        models = tuple(m for m in args.models.split(",") if m)
        if not models or any(m not in benchmark.MODELS for m in models):
            raise arg_error("bench", "--models", f"names from {', '.join(benchmark.MODELS)}", args.models)
        modes = tuple(m for m in args.modes.split(",") if m)
        if not modes or any(m not in ("train", "forward") for m in modes):
            raise arg_error("bench", "--modes", "names from train, forward", args.modes)
        batches = _batches(args.batches)
        if args.profile:
            for model in models:
                print(benchmark.profile(batches[0], model=model))
            return 0
        rows = _run_models(args, models, batches, modes)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def _batches(text: str) -> tuple[int, ...]:
    """``--batches`` as positive ints; a one-line error naming the option otherwise.

    Example:
        >>> _batches("32,128")
        (32, 128)
    """
    parts = [b.strip() for b in text.split(",") if b.strip()]
    if not parts or not all(b.isdigit() and int(b) > 0 for b in parts):
        raise arg_error("bench", "--batches", "comma-separated positive ints such as 32,128", text)
    return tuple(int(b) for b in parts)


def _run_models(
    args: argparse.Namespace,
    models: tuple[str, ...],
    batches: tuple[int, ...],
    modes: tuple[str, ...],
) -> list[Any]:
    """The model benchmark: reference models on random data, cnnlab against torch."""
    libs = ["cnnlab"]
    try:
        import torch  # noqa: F401

        libs += ["torch", "torch_cl"]
    except ImportError:
        pass
    return benchmark.run(
        batches,
        args.rounds,
        libs=libs,
        memory=not args.no_memory,
        models=models,
        modes=modes,
        cpu_clock=args.cpu_clock,
    )


def _run_recipe(args: argparse.Namespace) -> list[Any]:
    """The recipe mode: real training steps of ``--recipe NAME`` per engine."""
    wrong = _given(args, MODEL_OPTIONS)
    if wrong:
        raise ValueError(
            f"--recipe {args.recipe}: {', '.join(wrong)} belong to the model benchmark; the recipe "
            "sets the model and the batch size (drop them)"
        )
    _fill_defaults(args, RECIPE_OPTIONS)
    if args.steps < 1:
        raise arg_error("bench", "--steps", "a positive int", args.steps)
    lines = [line for line in args.lines.split(",") if line]
    if not lines or any(line not in LINES for line in lines) or len(set(lines)) < len(lines):
        raise arg_error("bench", "--lines", f"distinct names from {', '.join(LINES)}", args.lines)
    if args.compile and "torch-compile" not in lines:
        lines.append("torch-compile")
    return run_recipe(
        args.recipe,
        steps=args.steps,
        rounds=args.rounds,
        data_dir=args.data_dir,
        cpu_clock=args.cpu_clock,
        lines=tuple(lines),
        whole_epoch=args.epoch,
        memory=not args.no_memory,
    )


def _given(args: argparse.Namespace, options: dict[str, Any]) -> list[str]:
    """The ``options`` given on the command line (a value other than the parser's None / False)."""
    return [flag for flag in options if getattr(args, flag[2:].replace("-", "_")) not in (None, False)]


def _fill_defaults(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Set every one of ``options`` left out to its default."""
    for flag, default in options.items():
        name = flag[2:].replace("-", "_")
        if getattr(args, name) is None:
            setattr(args, name, default)


def main(argv: list[str] | None = None) -> int:
    """``benchmarks/bench_train_step.py``: the options of ``cnnlab bench`` (one parser)."""
    parser = argparse.ArgumentParser(description=(benchmark.__doc__ or "").splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    process.tune_process()  # as `cnnlab bench` runs (cli/main.py)
    return run(args)
