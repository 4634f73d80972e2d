"""Whole training runs of two recipes, one after the other: wall time and accuracy side by side.

Issue 25's "spend the speed" target: ``cnnlab train --recipe fashion-torch`` (the torch
backend) must reach >= 94.5% Fashion-MNIST test accuracy in no more wall time than
``cnnlab train --recipe fashion`` (the NumPy engine) takes on the same machine. This runs the
commands a user runs (plots and report included unless ``--no-plots``), one at a time so
they do not share the cores, and prints per run: wall time of the whole command, seconds
per epoch, the validation accuracy the recipe was chosen by (last epoch), the test accuracy
with the recipe's test-time augmentation and without it.

Run (idle machine; OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset so BLAS picks its own kernel)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_recipes.py \\
        --recipes fashion,fashion-torch --seeds 0 --out /tmp/recipes

``--seeds 0,1,2`` repeats each recipe per seed (spread); ``--extra`` passes more flags to
every run (e.g. ``--extra=--epochs=2`` for a quick check). Writes the run folders under
``--out`` (refuses to reuse one) and the rows to ``--out/bench_recipes.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_once(name: str, seed: int, out: Path, extra: list[str], plots: bool) -> dict[str, Any]:
    """One ``cnnlab train --recipe name --seed seed`` in a fresh process; its figures."""
    run_dir = out / f"{name}-seed{seed}"
    command = [sys.executable, "-m", "cnnlab", "train", "--recipe", name, "--seed", str(seed)]
    command += ["--out", str(run_dir), "--quiet", *extra, *([] if plots else ["--no-plots"])]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr}")
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    return {
        "recipe": name,
        "seed": seed,
        "backend": config.get("backend", "numpy"),
        "epochs": len(rows),
        "wall_s": round(wall, 1),
        "epoch_s": round(sum(float(r["seconds"]) for r in rows) / len(rows), 1),
        "val_accuracy": float(rows[-1]["val_accuracy"]),
        "test_accuracy": float(metrics["test_accuracy"]),
        "test_accuracy_without_tta": float(metrics.get("accuracy_without_tta", metrics["test_accuracy"])),
        "run_dir": str(run_dir),
    }


def machine_line() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        from threadpoolctl import threadpool_info

        blas = "; ".join(
            f"{i['internal_api']} {i.get('version')} {i.get('architecture')} threads={i['num_threads']}"
            for i in threadpool_info()
        )
    except ImportError:
        blas = "threadpoolctl not installed"
    return f"machine: {os.cpu_count()} cores, load average {load:.1f} at the start; {blas}"


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--recipes", default="fashion,fashion-torch", help="comma-separated recipe names")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the run folders")
    parser.add_argument("--extra", action="append", default=[], help="one more flag for every run")
    parser.add_argument("--no-plots", action="store_true", help="skip plots and report.html in every run")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"--out {args.out} exists: choose a new folder (run folders are never reused)")
    args.out.mkdir(parents=True)
    import numpy  # noqa: F401  (loaded so that threadpoolctl sees the BLAS)

    print(machine_line(), flush=True)
    rows = []
    header = f"{'recipe':<16}{'seed':>5}{'backend':>8}{'epochs':>7}{'wall s':>8}{'s/epoch':>8}"
    header += f"{'val':>8}{'test':>8}{'no TTA':>8}"
    print(header, flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in args.recipes.split(","):
            row = run_once(name.strip(), seed, args.out, args.extra, plots=not args.no_plots)
            rows.append(row)
            print(
                f"{row['recipe']:<16}{seed:>5}{row['backend']:>8}{row['epochs']:>7}{row['wall_s']:>8.1f}"
                f"{row['epoch_s']:>8.1f}{row['val_accuracy']:>8.2%}{row['test_accuracy']:>8.2%}"
                f"{row['test_accuracy_without_tta']:>8.2%}",
                flush=True,
            )
    (args.out / "bench_recipes.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
