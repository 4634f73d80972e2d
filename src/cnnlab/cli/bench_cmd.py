"""``cnnlab bench``: time a training step of cnnlab (each kernel tier) against PyTorch; print ratios."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``cnnlab bench`` (also used by ``benchmarks/bench_train_step.py``)."""
    from cnnlab.cli.benchmark import MODELS

    p.add_argument("--batches", default="32,128,512", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--profile", action="store_true", help="per-layer breakdown of a cnnlab step")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--models", default="small,resnet", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--modes", default="train,forward", help="comma-separated: train, forward")
    p.add_argument(
        "--cpu-clock",
        action="store_true",
        help="one thread per library, timed by process CPU time (for a machine shared with other jobs)",
    )
    p.add_argument(
        "--tiers",
        default="numpy,compiled",
        help="cnnlab kernel tiers to time, comma-separated: numpy, auto, compiled "
        "(the compiled ones only when numba is installed: pip install 'cnnlab[fast]')",
    )


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark a train step against PyTorch", description=__doc__)
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.cli import benchmark
    from cnnlab.errors import arg_error

    models = tuple(m for m in args.models.split(",") if m)
    unknown = [m for m in models if m not in benchmark.MODELS]
    if unknown:
        raise arg_error("cnnlab bench", "--models", f"names from {', '.join(benchmark.MODELS)}", args.models)
    tiers = tuple(t for t in args.tiers.split(",") if t)
    if not tiers or any(t not in benchmark.TIERS.values() for t in tiers):
        raise arg_error("cnnlab bench", "--tiers", "names from numpy, auto, compiled", args.tiers)
    if args.profile:
        for model in models:
            print(benchmark.profile(int(args.batches.split(",")[0]), model=model))
        return 0
    libs = benchmark.available_tiers(tiers)
    try:
        import torch  # noqa: F401

        libs += ["torch", "torch_cl"]
    except ImportError:
        pass
    rows = benchmark.run(
        tuple(int(b) for b in args.batches.split(",")),
        args.rounds,
        libs=libs,
        memory=not args.no_memory,
        models=models,
        modes=tuple(args.modes.split(",")),
        cpu_clock=args.cpu_clock,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
