"""One image and the network's top-k class probabilities beside it (``cnnlab show``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.viz.figure import new_figure, save, show_image

#: Pixel size of the prediction PNG.
SIZE = (900, 400)


def plot_prediction(
    image: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: str | os.PathLike[str], top_k: int = 5
) -> Path:
    """Draw ``image`` ``(C, H, W)`` and a bar chart of its ``top_k`` softmax probabilities.

    Classes without a name in ``classes`` are labelled with their index.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> out = plot_prediction(np.zeros((1, 8, 8)), np.array([0.7, 0.2, 0.1]), ["a", "b", "c"],
        ...                       pathlib.Path(tempfile.mkdtemp()) / "p.png", top_k=2)
        >>> out.name
        'p.png'
    """
    probs = np.asarray(probs, dtype=np.float64)
    names = [str(classes[i]) if i < len(classes) else str(i) for i in range(len(probs))]  # indices if unnamed
    top = np.argsort(-probs, kind="stable")[: max(1, top_k)]
    fig = new_figure(*SIZE)
    ax_img, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    show_image(ax_img, image, f"predicted: {names[top[0]]} ({probs[top[0]]:.1%})", fontsize=11)
    labels = [names[i] for i in top][::-1]  # best on top
    values = probs[top][::-1]
    bars = ax_bar.barh(labels, values, color="tab:blue")
    for bar, value in zip(bars, values, strict=True):
        ax_bar.text(
            min(value + 0.01, 0.9),
            bar.get_y() + bar.get_height() / 2,
            f"{value:.1%}",
            va="center",
            fontsize=9,
        )
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xlabel("softmax probability")
    ax_bar.set_title(f"Top {len(top)} classes")
    fig.tight_layout()
    return save(fig, path)
