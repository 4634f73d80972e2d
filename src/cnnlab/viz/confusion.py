"""Confusion matrix heatmap and per-class accuracy bars, labelled with the class names.

Rows are the true class, columns the predicted class (as in ``metrics.json``). Cells are
coloured by the row's share (the recall of that pair), so a small class's mistakes are as
visible as a large class's; the count is written in every cell when there are at most 20
classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.viz.figure import new_figure, save

#: Pixel size of the confusion-matrix PNG.
CONFUSION_SIZE = (800, 700)
#: Pixel size of the per-class accuracy PNG.
PER_CLASS_SIZE = (1000, 450)


def plot_confusion(matrix: Any, classes: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Draw the confusion matrix as a heatmap; save a ``CONFUSION_SIZE`` PNG at ``path``.

    Args:
        matrix: ``(K, K)`` counts, rows true class, columns predicted class.
        classes: the K class names.
        path: where the PNG goes.

    Example:
        >>> import tempfile, pathlib
        >>> out = plot_confusion([[5, 1], [2, 7]], ["cat", "dog"],
        ...                      pathlib.Path(tempfile.mkdtemp()) / "cm.png")
        >>> out.suffix
        '.png'
    """
    cm = np.asarray(matrix, dtype=np.int64)  # (K, K)
    k = len(classes)
    if cm.shape != (k, k):
        raise ValueError(
            f"plot_confusion: matrix must be ({k}, {k}) for {k} classes. Received: shape {cm.shape}"
        )
    totals = cm.sum(axis=1, keepdims=True)  # (K, 1)
    share = cm / np.maximum(totals, 1)  # (K, K) row-normalized
    fig = new_figure(*CONFUSION_SIZE)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(
        classes, rotation=45 if _long(classes) else 0, ha="right" if _long(classes) else "center", fontsize=8
    )
    ax.set_yticklabels(classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(int(cm.sum()), 1)
    ax.set_title(f"Confusion matrix (test accuracy {accuracy:.1%})")
    fig.tight_layout()
    return save(fig, path)


def plot_per_class(per_class: dict[str, dict[str, float]], path: str | os.PathLike[str]) -> Path:
    """Bar chart of each class's accuracy (its recall); save a ``PER_CLASS_SIZE`` PNG.

    Args:
        per_class: ``metrics.json``'s ``per_class``: class name -> {"recall", "support", ...}.
        path: where the PNG goes.
    """
    names = list(per_class)
    recall = np.array([per_class[n]["recall"] for n in names], dtype=np.float64)  # (K,)
    support = np.array([per_class[n].get("support", 0) for n in names], dtype=np.float64)
    fig = new_figure(*PER_CLASS_SIZE)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(len(names)), recall, color="tab:blue")
    if len(names) <= 20:
        for bar, value in zip(bars, recall, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value + 0.01,
                f"{value:.0%}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    if support.sum() > 0:
        overall = float((recall * support).sum() / support.sum())
        ax.axhline(
            overall, color="tab:red", linestyle="--", linewidth=1, label=f"overall accuracy {overall:.1%}"
        )
        ax.legend(loc="lower right", fontsize=9)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        names, rotation=45 if _long(names) else 0, ha="right" if _long(names) else "center", fontsize=8
    )
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy on the class's test images")
    ax.set_title("Per-class accuracy")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def _long(names: Sequence[str]) -> bool:
    """Whether tick labels need rotating to avoid overlaps (e.g. Fashion-MNIST's names)."""
    return max((len(str(n)) for n in names), default=0) > 3
