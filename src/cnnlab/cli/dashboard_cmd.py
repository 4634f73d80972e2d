"""``cnnlab dashboard [RUNS_DIR]``: a live web page of the runs in RUNS_DIR (default ``runs``).

Shows every run in a sortable table, learning curves that update while a run trains, the
confusion matrix and per-class accuracy, feature maps, and a "try it" pad (draw or upload
an image: top-k probabilities and Grad-CAM). Binds 127.0.0.1 unless --host says otherwise;
the page loads nothing from the network. Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cnnlab.dashboard.server import DEFAULT_HOST, DEFAULT_PORT, BackgroundServer, wait_for_ctrl_c
from cnnlab.errors import arg_error


def add_parser(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="serve a live web page of the runs in a folder", description=__doc__)
    p.add_argument("runs_dir", nargs="?", default="runs", help="folder of run folders (default runs)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise arg_error("dashboard", "port", "in 0..65535 (0: any free port)", args.port)
    if not Path(args.runs_dir).is_dir():
        raise FileNotFoundError(f"dashboard: RUNS_DIR {args.runs_dir!r} is not a folder (train a run first)")
    server = BackgroundServer(args.runs_dir, host=args.host, port=args.port).start()
    if args.host not in ("127.0.0.1", "localhost", "::1"):  # once it listens: a bad host is one error
        print(
            f"cnnlab dashboard: warning: listening on {args.host}: anyone who can reach it sees these runs "
            "and can run their models (no login)",
            file=sys.stderr,
        )
    wait_for_ctrl_c(server, f"cnnlab dashboard: serving {args.runs_dir} at {server.url} (Ctrl-C to stop)")
    return 0
