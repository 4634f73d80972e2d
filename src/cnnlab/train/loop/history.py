"""History: one row per epoch of a training run, with CSV and JSON round trips.

A row has the columns of ``COLUMNS``::

    epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds

``epoch`` counts from 1. Without validation data ``val_loss`` and ``val_accuracy`` are NaN
in memory, empty cells in CSV and ``null`` in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any

import numpy as np

from cnnlab.atomic import write_text_atomic
from cnnlab.errors import arg_error
from cnnlab.jsonfile import read_json_object

COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")

PathLike = str | os.PathLike[str]


def write_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see ``cnnlab.atomic``): never half-written."""
    write_text_atomic(path, text)


def resolve_mode(monitor: str, mode: str, where: str) -> str:
    """Return "min" or "max": "auto" means max for accuracies, min for everything else."""
    if mode not in ("auto", "min", "max"):
        raise arg_error(where, "mode", 'one of "auto", "min", "max"', mode)
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class History:
    """Per-epoch metrics of a ``fit`` run.

    Example:
        >>> h = History()
        >>> h.append(epoch=1, train_loss=0.9, train_accuracy=0.6, lr=0.1, seconds=1.0)
        >>> h.append(epoch=2, train_loss=0.5, train_accuracy=0.8, lr=0.1, seconds=1.0)
        >>> h.column("train_loss").tolist()
        [0.9, 0.5]
        >>> h.best_epoch("train_accuracy")
        2
    """

    def __init__(self, rows: list[dict[str, Any]] | None = None) -> None:
        self.rows: list[dict[str, Any]] = []
        for row in rows or []:
            self.append(**row)

    def append(self, **values: Any) -> None:
        """Add one epoch's row; missing metric columns become NaN."""
        unknown = sorted(set(values) - set(COLUMNS))
        if unknown:
            raise ValueError(f"History.append: unknown column(s) {unknown}. Columns: {', '.join(COLUMNS)}")
        row: dict[str, Any] = {"epoch": int(values.get("epoch", len(self.rows) + 1))}
        for name in COLUMNS[1:]:
            value = values.get(name)
            row[name] = math.nan if value is None else float(value)
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"History({len(self.rows)} epochs)"

    @property
    def last(self) -> dict[str, Any]:
        """The most recent row."""
        if not self.rows:
            raise IndexError("History.last: no epochs recorded yet")
        return self.rows[-1]

    def column(self, name: str) -> np.ndarray:
        """All values of one column as a float array (int for ``epoch``)."""
        if name not in COLUMNS:
            raise arg_error("History.column", "name", f"one of {', '.join(COLUMNS)}", name)
        dtype = np.int64 if name == "epoch" else np.float64
        return np.array([row[name] for row in self.rows], dtype=dtype)

    def best_epoch(self, monitor: str = "val_loss", mode: str = "auto") -> int:
        """The epoch number with the best ``monitor`` value (NaN rows skipped; first on ties).

        ``mode="auto"`` maximizes accuracies and minimizes everything else.
        """
        direction = resolve_mode(monitor, mode, "History.best_epoch")
        values = self.column(monitor)
        finite = np.isfinite(values)
        if not finite.any():
            raise ValueError(
                f"History.best_epoch: column `{monitor}` has no finite values "
                f"({len(self.rows)} epochs; val_* columns need validation data)"
            )
        scores = np.where(finite, values, np.inf if direction == "min" else -np.inf)
        index = int(np.argmin(scores) if direction == "min" else np.argmax(scores))
        return int(self.rows[index]["epoch"])

    # ---- files --------------------------------------------------------------------------
    def to_csv(self, path: PathLike) -> None:
        """Write the rows as CSV (header ``COLUMNS``), atomically; floats round-trip exactly."""
        write_atomic(path, self.csv_text())

    def csv_text(self) -> str:
        """The CSV that ``to_csv`` writes."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows:
            writer.writerow([_format_cell(row[name]) for name in COLUMNS])
        return buf.getvalue()

    @classmethod
    def from_csv(cls, path: PathLike) -> History:
        """Read a file written by ``to_csv`` (empty cells and "nan" become NaN)."""
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(
                    f"History.from_csv: {path} lacks column(s) {missing}. "
                    f"Expected header: {','.join(COLUMNS)}"
                )
            rows = [{name: _parse_cell(line[name]) for name in COLUMNS} for line in reader]
        return cls(rows)

    def to_json(self, path: PathLike) -> None:
        """Write ``{"columns": [...], "rows": [{...}, ...]}`` atomically (NaN as ``null``)."""
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in self.rows
        ]
        write_atomic(path, json.dumps({"columns": list(COLUMNS), "rows": rows}, indent=2) + "\n")

    @classmethod
    def from_json(cls, path: PathLike) -> History:
        """Read a file written by ``to_json``."""
        return cls(read_json_object(path)["rows"])


def restore_csv(path: PathLike, rows: list[dict[str, Any]]) -> bool:
    """Rewrite ``path`` from ``rows`` (a checkpoint's) unless it already holds them.

    A resumed run's history.csv is the checkpoint's: an emptied or truncated file (or one a
    kill left an epoch ahead) is rebuilt, even when no epoch is left to train (issue 23
    item 10: a finished run with an empty history.csv was then undiagnosable).

    Returns:
        True when the file was (re)written.
    """
    text = History(rows).csv_text()
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text)
    return True


def _format_cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # repr: shortest exact round trip
    return str(value)


def _parse_cell(text: str) -> float | None:
    text = text.strip()
    return None if text == "" or text.lower() == "nan" else float(text)
