"""Reading run folders for the dashboard: safely, read-only, and while they are being written.

A run is a folder under ``RUNS_DIR`` (at most ``MAX_DEPTH`` levels down) holding a
``config.json``, ``history.csv`` or ``metrics.json`` (see ``cnnlab.train.runs.run``). Runs are
named by their path relative to ``RUNS_DIR`` with ``/`` separators, e.g. ``"fashion/seed1"``.

Every name that comes from a request goes through ``RunsDir.resolve``: a name with ``..``,
an absolute path, a backslash or a NUL, or one that leads outside ``RUNS_DIR`` after
following symlinks raises ``NotFound`` (the app answers 404). Nothing here writes a file.
Files a training run is rewriting are read with every error caught: a half-written or
missing file reads as "not there yet", never as a crash.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from cnnlab.train.runs.files import CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE
from cnnlab.viz.confusion_summary import heatmap_png, is_large, per_class_summary, top_confusions

#: Files whose presence makes a folder a run.
RUN_MARKERS = (CONFIG_FILE, HISTORY_FILE, METRICS_FILE)
#: How deep below RUNS_DIR runs are looked for (runs/<name> is depth 1).
MAX_DEPTH = 3
#: A run without metrics.json whose files changed this recently is shown as "training".
ACTIVE_SECONDS = 300.0
#: Config keys shown as table columns (others stay in the run's details).
CONFIG_COLUMNS = (
    "data",
    "model",
    "model_args",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "augment",
    "seed",
    "backend",
)


class NotFound(Exception):
    """A requested run or file does not exist inside RUNS_DIR (the app answers 404)."""


class RunsDir:
    """The folder of runs the dashboard serves, and the only way to turn names into paths.

    Example:
        >>> import tempfile
        >>> runs = RunsDir(tempfile.mkdtemp())
        >>> runs.resolve("../etc")
        Traceback (most recent call last):
        ...
        cnnlab.dashboard.data.NotFound: ../etc
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def resolve(self, name: str, must_exist: bool = True) -> Path:
        """The path of ``name`` (a run, or a file inside one) under the root, or ``NotFound``."""
        parts = name.split("/")
        bad = (
            not name
            or "\\" in name
            or "\x00" in name
            or name.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or (len(parts[0]) >= 2 and parts[0][1] == ":")  # C:... on Windows
        )
        if bad:
            raise NotFound(name)
        path = self.root.joinpath(*parts)
        try:
            real = path.resolve(strict=must_exist)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            raise NotFound(name) from None
        if real != self.root and not real.is_relative_to(self.root):  # a symlink leading out
            raise NotFound(name)
        return real

    def run(self, name: str) -> Path:
        """The folder of run ``name``; ``NotFound`` unless it is a run folder."""
        path = self.resolve(name)
        if not is_run(path):
            raise NotFound(name)
        return path

    def runs(self) -> list[str]:
        """Names of every run folder under the root (sorted; symlinks leading out skipped)."""
        found: list[str] = []

        def walk(folder: Path, depth: int) -> None:
            try:
                children = sorted(folder.iterdir())
            except OSError:
                return
            for child in children:
                if child.name.startswith(".") or not child.is_dir():
                    continue
                name = child.relative_to(self.root).as_posix()
                try:
                    self.resolve(name)
                except NotFound:
                    continue
                if is_run(child):
                    found.append(name)
                elif depth < MAX_DEPTH:
                    walk(child, depth + 1)

        walk(self.root, 1)
        return found


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in RUN_MARKERS)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, partial or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_history(path: Path) -> list[dict[str, float | None]]:
    """Rows of a ``history.csv``; a missing file is no rows, a torn last line is dropped.

    Cells that are empty or not numbers read as None (NaN is not JSON).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / HISTORY_FILE
        >>> _ = p.write_text("epoch,train_loss\\n1,0.5\\n2,0.25\\n3,0.")
        >>> read_history(p)
        [{'epoch': 1.0, 'train_loss': 0.5}, {'epoch': 2.0, 'train_loss': 0.25}]
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]  # being written: the last line may be cut anywhere
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader, None)
    if not header:
        return []
    rows = []
    for cells in reader:
        if len(cells) != len(header):
            continue
        row = {name: _number(cell) for name, cell in zip(header, cells, strict=True)}
        if row.get("epoch") is not None:
            rows.append(row)
    return rows


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime_ns) of a run's files: changes whenever the run writes one."""
    out = []
    for name in (*RUN_MARKERS, CHECKPOINT_FILE, MODEL_FILE):
        try:
            st = (path / name).stat()
        except OSError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def run_summary(runs: RunsDir, name: str) -> dict[str, Any]:
    """One row of the runs table: config columns, progress and metrics of run ``name``."""
    path = runs.run(name)
    config = read_json(path / CONFIG_FILE) or {}
    metrics = read_json(path / METRICS_FILE)
    history = read_history(path / HISTORY_FILE)
    modified = max((mtime for _, _, mtime in signature(path)), default=0) / 1e9
    if metrics is not None:
        status = "done"
    elif time.time() - modified < ACTIVE_SECONDS:
        status = "training"
    else:
        status = "stopped"
    val_acc = [v for r in history if (v := r.get("val_accuracy")) is not None]
    row: dict[str, Any] = {
        "run": name,
        "status": status,
        "epochs_done": len(history),
        **{key: _cell(config.get(key)) for key in CONFIG_COLUMNS},
        "best_val_accuracy": max(val_acc) if val_acc else None,
        "test_accuracy": (metrics or {}).get("test_accuracy"),
        "test_loss": (metrics or {}).get("test_loss"),
        "seconds": (metrics or {}).get("seconds"),
        "modified": modified,
    }
    return row


def _cell(value: Any) -> Any:
    """Table cells are scalars: dicts and lists become compact JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":")) if value else ""
    return value


def _summarized(cm: list[list[int]], classes: list[str]) -> dict[str, Any]:
    """A large confusion matrix as the page shows it: a heatmap, the top confusions, the
    per-class spread; the cells stay in metrics.json (1000 classes: a million of them)."""
    try:
        png = heatmap_png(cm, classes)
        heatmap = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    except (ValueError, ImportError):  # a matrix of the wrong shape, or no Pillow
        heatmap = None
    try:
        return {
            "confusion_matrix": None,
            "summarized": True,
            "heatmap": heatmap,
            "top_confusions": top_confusions(cm, classes),
            "per_class_summary": per_class_summary(cm, classes, worst=20),
        }
    except ValueError:  # not (K, K): nothing to show
        return {"confusion_matrix": None, "summarized": True, "heatmap": None, "top_confusions": []}


def run_details(runs: RunsDir, name: str) -> dict[str, Any]:
    """Everything the page shows about one run that is not computed from its weights."""
    path = runs.run(name)
    metrics = read_json(path / METRICS_FILE)
    evaluation = None
    if metrics and isinstance(metrics.get("confusion_matrix"), list):
        per_class = metrics.get("per_class") or {}
        evaluation = {
            "classes": list(per_class),
            "confusion_matrix": metrics["confusion_matrix"],
            # per-class accuracy = recall: the share of a class's test images called that class
            "per_class_accuracy": [v.get("recall") for v in per_class.values()],
        }
        if is_large(evaluation["classes"]):
            evaluation.update(_summarized(metrics["confusion_matrix"], evaluation["classes"]))
    files = sorted(
        p.relative_to(path).as_posix()
        for p in [*path.glob("*"), *path.glob("plots/*")]
        if p.is_file() and not p.name.startswith(".")
    )
    return {
        "run": name,
        "summary": run_summary(runs, name),
        "config": read_json(path / CONFIG_FILE),
        "metrics": {k: v for k, v in (metrics or {}).items() if k not in ("confusion_matrix", "per_class")},
        "history": read_history(path / HISTORY_FILE),
        "evaluation": evaluation,
        "files": files,
    }
