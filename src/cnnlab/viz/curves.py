"""Learning curves: loss and accuracy per epoch (train vs validation) and the learning rate.

The lecture's tuning step reads these curves: validation loss rising while training loss
falls is overfitting; both high and flat is underfitting. The best epoch (lowest validation
loss, or training loss without validation data) is marked on every panel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnnlab.train.loop.history import History
from cnnlab.viz.figure import new_figure, save

#: Pixel size of the learning-curves PNG (three panels side by side).
SIZE = (1500, 450)


def best_epoch(history: History) -> int:
    """The epoch with the lowest validation loss (training loss when there is no validation)."""
    if np.isfinite(history.column("val_loss")).any():
        return history.best_epoch("val_loss")
    return history.best_epoch("train_loss")


def plot_curves(history: History, path: str | os.PathLike[str]) -> Path:
    """Draw loss, accuracy and learning rate per epoch; save a ``SIZE`` PNG at ``path``.

    Args:
        history: the run's epochs (``History.from_csv(run_dir / "history.csv")``).
        path: where the PNG goes.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab.train.loop.history import History
        >>> h = History()
        >>> for e in (1, 2, 3):
        ...     h.append(epoch=e, train_loss=1 / e, train_accuracy=1 - 0.5 / e, val_loss=1.2 / e,
        ...              val_accuracy=1 - 0.6 / e, lr=0.01, seconds=1.0)
        >>> out = plot_curves(h, pathlib.Path(tempfile.mkdtemp()) / "curves.png")
        >>> out.name
        'curves.png'
    """
    if len(history) == 0:
        raise ValueError("plot_curves: the history has no epochs")
    epochs = history.column("epoch")
    best = best_epoch(history)
    fig = new_figure(*SIZE)
    axes = fig.subplots(1, 3)
    panels = (("loss", "Loss (cross-entropy)"), ("accuracy", "Accuracy"))
    for ax, (metric, title) in zip(axes[:2], panels, strict=False):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = history.column(f"{split}_{metric}")
            if np.isfinite(values).any():
                label = "train" if split == "train" else "validation"
                ax.plot(epochs, values, style, markersize=4, label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    lr = history.column("lr")
    axes[2].plot(epochs, lr, "-o", markersize=4, color="tab:green", label="learning rate")
    axes[2].set_title("Learning rate")
    axes[2].set_xlabel("epoch")
    if np.all(lr > 0) and lr.max() / lr.min() > 100:  # a step schedule spans decades
        axes[2].set_yscale("log")
    for ax in axes:
        ax.axvline(best, color="tab:red", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
        ax.set_xticks(_ticks(epochs))
    fig.tight_layout()
    return save(fig, path)


def _ticks(epochs: np.ndarray) -> list[int]:
    """Integer epoch ticks, at most about ten of them."""
    step = max(1, int(np.ceil(len(epochs) / 10)))
    return [int(e) for e in epochs[::step]]
