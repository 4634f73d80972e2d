"""benchmarks/bench_recipes.py: runs the recipes a user runs and reads their figures back
(no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_recipes.py"


def test_two_seeds_of_a_quick_recipe_give_one_row_each(tmp_path: Path) -> None:
    out = tmp_path / "race"
    command = [sys.executable, str(SCRIPT), "--recipes", "digits", "--seeds", "0,1", "--out", str(out)]
    proc = subprocess.run([*command, "--extra=--epochs=1", "--no-plots"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "bench_recipes.json").read_text())
    assert [(r["recipe"], r["seed"], r["epochs"], r["backend"]) for r in rows] == [
        ("digits", 0, 1, "numpy"),
        ("digits", 1, 1, "numpy"),
    ]
    for row in rows:
        metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
        assert row["test_accuracy"] == metrics["test_accuracy"] and 0.5 < row["test_accuracy"] <= 1
        assert row["wall_s"] > 0
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("machine: ") and lines[1].split()[:3] == ["recipe", "seed", "backend"]
    assert len(lines) == 4  # machine, header, one line per run


def test_an_existing_out_folder_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--recipes", "digits", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "exists: choose a new folder" in proc.stderr
