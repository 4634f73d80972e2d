"""``cnnlab bench``: time a training step of cnnlab against PyTorch and print ratios."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark a train step against PyTorch", description=__doc__)
    p.add_argument("--batches", default="32,128,512", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--profile", action="store_true", help="per-layer breakdown of a cnnlab step")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--models", default="small,resnet", help="comma-separated: small, resnet")
    p.add_argument("--modes", default=None, help="comma-separated: train, forward (default both)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.benchmark import main

    argv = ["--batches", args.batches, "--rounds", str(args.rounds)]
    argv += ["--no-memory"] * args.no_memory + ["--profile"] * args.profile
    argv += ["--json", args.json] if args.json else []
    argv += ["--models", args.models] + (["--modes", args.modes] if args.modes else [])
    return main(argv)
