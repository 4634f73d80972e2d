"""Progress display for ``fit``: a live bar per epoch, one line per epoch, or nothing.

- ``verbose=False``: nothing at all.
- stdout is a terminal and rich is installed: a live bar with loss, accuracy and images/s,
  replaced at the end of each epoch by its summary line.
- otherwise (a log file, a pipe, CI, no rich): the summary line alone, once per epoch, so
  logs are not flooded with bar redraws.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO


def epoch_line(row: dict[str, Any], epochs: int, images_per_s: float, note: str = "") -> str:
    """The one-line summary of an epoch, ``note`` (e.g. the seconds spent compiling) at its end.

    Example:
        >>> row = {"epoch": 2, "train_loss": 0.25, "train_accuracy": 0.9, "val_loss": float("nan"),
        ...        "val_accuracy": float("nan"), "lr": 0.01, "seconds": 1.5}
        >>> epoch_line(row, 10, 1234.0)
        'epoch  2/10  loss 0.2500  acc 0.9000  lr 0.01  1234 img/s  1.5s'
        >>> epoch_line(row, 10, 1234.0, note="torch.compile 1.2s").endswith("1.5s  torch.compile 1.2s")
        True
    """
    width = len(str(epochs))
    parts = [
        f"epoch {row['epoch']:>{width}}/{epochs}",
        f"loss {row['train_loss']:.4f}",
        f"acc {row['train_accuracy']:.4f}",
    ]
    if not math.isnan(row["val_loss"]):
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_accuracy']:.4f}"]
    parts += [f"lr {row['lr']:.3g}", f"{images_per_s:.0f} img/s", f"{row['seconds']:.1f}s"]
    parts += [note] if note else []
    return "  ".join(parts)


class Progress:
    """Quiet progress: every method does nothing (``verbose=False``)."""

    def start_epoch(self, epoch: int, num_batches: int) -> None:
        pass

    def update(self, loss: float, accuracy: float, images_per_s: float) -> None:
        """After a batch: running loss and accuracy of the epoch so far."""

    def end_epoch(self, row: dict[str, Any], images_per_s: float, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress(Progress):
    """One summary line per epoch on ``stream``: no redraws, friendly to logs and pipes."""

    def __init__(self, epochs: int, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.stream = stream

    def end_epoch(self, row: dict[str, Any], images_per_s: float, note: str = "") -> None:
        print(epoch_line(row, self.epochs, images_per_s, note), file=self.stream or sys.stdout, flush=True)


class RichProgress(Progress):
    """A live rich bar per epoch; each finished epoch leaves its summary line behind."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import (  # lazy: rich is an optional dependency
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichBar

        self.epochs = epochs
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            transient=True,
        )
        self.bar.start()
        self.task: Any = None
        self.stats = ""

    def start_epoch(self, epoch: int, num_batches: int) -> None:
        width = len(str(self.epochs))
        self.stats = ""
        self.task = self.bar.add_task(f"epoch {epoch:>{width}}/{self.epochs}", total=num_batches, stats="")

    def update(self, loss: float, accuracy: float, images_per_s: float) -> None:
        self.stats = f"loss {loss:.4f}  acc {accuracy:.4f}  {images_per_s:.0f} img/s"
        self.bar.update(self.task, advance=1, stats=self.stats)

    def end_epoch(self, row: dict[str, Any], images_per_s: float, note: str = "") -> None:
        self.bar.remove_task(self.task)
        self.task = None
        self.bar.console.print(epoch_line(row, self.epochs, images_per_s, note), highlight=False)

    def close(self) -> None:
        self.bar.stop()


def make_progress(verbose: bool, epochs: int) -> Progress:
    """Pick the display: quiet, a live rich bar (terminal + rich), or one line per epoch."""
    if not verbose:
        return Progress()
    if sys.stdout.isatty():
        try:
            return RichProgress(epochs)
        except ImportError:
            pass
    return LineProgress(epochs)
