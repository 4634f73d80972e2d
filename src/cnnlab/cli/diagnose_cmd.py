"""``cnnlab diagnose RUN_DIR``: underfitting, overfitting, good fit, diverging or undertrained."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnlab.train.analysis.diagnose import diagnose_run


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diagnose", help="read a run's curves and say what to tune", description=__doc__)
    p.add_argument("run", help="run folder (or its history.csv)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = diagnose_run(args.run)
    print(json.dumps(result.as_dict()) if args.json else result)
    return 0
