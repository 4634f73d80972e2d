"""``cnnlab plot RUN_DIR`` (plots + report.html) or ``cnnlab plot activations``.

``cnnlab plot RUN_DIR`` writes learning curves, confusion matrix, per-class accuracy,
misclassified test images, first-layer filters, feature maps and feature-space projections
into ``RUN_DIR/plots/`` and the self-contained ``RUN_DIR/report.html``.
``cnnlab plot activations`` draws the lecture's six activation functions and their
derivatives into ``DIR/activations.png`` (``--out DIR``, default the current folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.train.runs.files import HISTORY_FILE, MODEL_FILE
from cnnlab.viz.activations import plot_activations
from cnnlab.viz.report import write_report
from cnnlab.viz.run_plots import plot_run


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's plots and HTML report, or the activation functions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="a run folder, or `activations`")
    p.add_argument("--out", default=None, help="activations: folder for activations.png (default .)")
    p.add_argument("--no-report", action="store_true", help="run folder: PNGs only, no report.html")
    p.add_argument("--no-tsne", action="store_true", help="run folder: skip the (slower) t-SNE projection")
    p.set_defaults(func=run)


def _is_run(path: Path) -> bool:
    return (path / HISTORY_FILE).exists() or (path / MODEL_FILE).exists()


def run(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if args.target == "activations" and not _is_run(target):
        print(plot_activations(Path(args.out or ".") / "activations.png"))
        return 0
    if not target.is_dir():
        raise FileNotFoundError(
            f"no run folder {target} (give a folder written by `cnnlab train`, or `activations`)"
        )
    if args.out is not None:
        raise ValueError("--out is for `cnnlab plot activations`; a run's plots go into RUN_DIR/plots/")

    tsne = False if args.no_tsne else None
    for path in plot_run(target, tsne=tsne):
        print(path)
    if not args.no_report:
        print(write_report(target, make_plots=False))
    return 0
