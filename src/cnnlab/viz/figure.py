"""A matplotlib figure drawn on the Agg canvas: no display and no global pyplot state.

Using ``matplotlib.figure.Figure`` with ``FigureCanvasAgg`` (not ``pyplot``) leaves the
user's backend alone (a notebook keeps its inline plots) and never leaks open figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError

#: Dots per inch of every saved PNG: a figure of ``width`` x ``height`` pixels is saved at
#: exactly that size.
DPI = 100


def new_figure(width: int, height: int) -> Any:
    """Return an empty ``Figure`` of ``width`` x ``height`` pixels on an Agg canvas.

    Raises:
        CnnlabError: matplotlib is not installed (the message says how to install it).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CnnlabError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as a PNG at its own pixel size (parent folders created); return the path.

    The PNG is written atomically (a temp file in the same folder, then ``os.replace``): a
    full disk leaves the previous picture whole and the error names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, dpi=DPI, format="png"))
    return path


def show_image(ax: Any, image: Any, title: str | None = None, fontsize: int = 9) -> None:
    """Draw a ``(C, H, W)`` image (C = 1: grey, C = 3: colour) without axes ticks.

    Values are rescaled to [0, 1] per image so normalized inputs and feature maps show
    their full contrast.
    """
    import numpy as np

    img = np.asarray(image, dtype=np.float64)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.ndim == 3 and img.shape[0] == 3:
        ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")  # (H, W, 3)
    else:
        gray = img[0] if img.ndim == 3 else img  # (H, W)
        ax.imshow(gray, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
