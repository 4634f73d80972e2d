"""Pictures of Grad-CAM and saliency maps: heatmaps laid over the image.

- ``overlay``: one image with a [0, 1] heatmap blended over it, as an RGB array (NumPy only,
  so a web page can encode it with Pillow without matplotlib);
- ``plot_cam``: one image, its Grad-CAM overlays for some classes and its saliency map
  (``cnnlab show RUN IMAGE --cam``);
- ``plot_cam_misclassified``: misclassified test images, each with the Grad-CAM of the
  predicted and of the true class (the report's Grad-CAM section).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.viz.figure import new_figure, save, show_image

#: Pixels per panel of the ``plot_cam`` row and of the misclassified grid's cells.
CAM_CELL = 220
#: Misclassified examples per grid row (each takes 3 cells: image, predicted, true).
CAM_EXAMPLES_PER_ROW = 3
#: Weight of the heatmap in the blend (the image keeps 1 - alpha).
ALPHA = 0.5


def jet(values: np.ndarray) -> np.ndarray:
    """The classic "jet" colour map (blue -> cyan -> yellow -> red) of values in [0, 1].

    Piecewise linear: r = clip(1.5 - |4v - 3|), g = clip(1.5 - |4v - 2|),
    b = clip(1.5 - |4v - 1|), each clipped to [0, 1].

    Shape:
        - Input: any shape (...). Output: (..., 3) RGB in [0, 1].

    Example:
        >>> jet(np.array([0.0, 0.5, 1.0])).round(2).tolist()
        [[0.0, 0.0, 0.5], [0.5, 1.0, 0.5], [0.5, 0.0, 0.0]]
    """
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1)[..., None]  # (..., 1)
    centers = np.array([3.0, 2.0, 1.0])  # r, g, b
    return np.clip(1.5 - np.abs(4 * v - centers), 0, 1)  # (..., 3)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Blend a heatmap over an image: ``(1 - alpha) * image + alpha * jet(cam)``.

    Args:
        image: ``(C, H, W)`` with C = 1 (grey) or 3 (colour), any value range (rescaled to
            [0, 1] per image, as ``show_image`` does).
        cam: ``(H, W)`` heatmap in [0, 1] (e.g. one map of ``grad_cam``).
        alpha: the heatmap's weight.

    Returns:
        ``(H, W, 3)`` float RGB in [0, 1].

    Example:
        >>> overlay(np.zeros((1, 2, 2)), np.ones((2, 2)), alpha=1.0)[0, 0].tolist()
        [0.5, 0.0, 0.0]
    """
    img = np.asarray(image, dtype=np.float64)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    rgb = np.repeat(img[:1], 3, axis=0) if img.shape[0] != 3 else img  # (3, H, W)
    return (1 - alpha) * rgb.transpose(1, 2, 0) + alpha * jet(cam)  # (H, W, 3)


def plot_cam(
    image: np.ndarray,
    cams: Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike[str],
    saliency_map: np.ndarray | None = None,
    title: str = "Grad-CAM: where the network looks",
) -> Path:
    """One row: the image, a Grad-CAM overlay per ``(title, cam)``, then the saliency map.

    Size: ``CAM_CELL`` pixels per panel wide, ``CAM_CELL + 60`` high.
    """
    panels = 1 + len(cams) + (saliency_map is not None)
    fig = new_figure(panels * CAM_CELL, CAM_CELL + 60)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    show_image(axes[0], image, "input", fontsize=10)
    for ax, (name, cam) in zip(axes[1:], cams, strict=False):
        _show_overlay(ax, image, cam, name)
    if saliency_map is not None:
        show_image(axes[-1], saliency_map[None], "saliency |d logit / d x|", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def cam_grid_size(count: int) -> tuple[int, int]:
    """Pixel size of ``plot_cam_misclassified`` for ``count`` examples."""
    rows = max(1, math.ceil(count / CAM_EXAMPLES_PER_ROW))
    return 3 * CAM_EXAMPLES_PER_ROW * CAM_CELL * 2 // 3, rows * CAM_CELL * 2 // 3 + 60


def plot_cam_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    cam_pred: np.ndarray,
    cam_true: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    layer: str = "",
) -> Path:
    """Misclassified images, each with the Grad-CAM of the predicted and the true class.

    Args:
        images: ``(n, C, H, W)`` the misclassified images (not normalized).
        y_true, y_pred: ``(n,)`` their classes.
        cam_pred, cam_true: ``(n, H, W)`` Grad-CAM of the predicted and of the true class.
        classes: class names.
        path: where the PNG goes; size ``cam_grid_size(n)``.
        layer: the Grad-CAM layer's name, for the title.
    """
    n = len(images)
    fig = new_figure(*cam_grid_size(n))
    if n == 0:
        fig.text(0.5, 0.5, "no misclassified test images", ha="center", va="center", fontsize=14)
        return save(fig, path)
    rows = math.ceil(n / CAM_EXAMPLES_PER_ROW)
    axes = fig.subplots(rows, 3 * CAM_EXAMPLES_PER_ROW, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        row, col = divmod(i, CAM_EXAMPLES_PER_ROW)
        ax_img, ax_pred, ax_true = axes[row, 3 * col : 3 * col + 3]
        show_image(ax_img, images[i], f"#{i + 1} input", fontsize=8)
        _show_overlay(ax_pred, images[i], cam_pred[i], f"pred {_short(classes[y_pred[i]])}", fontsize=8)
        _show_overlay(ax_true, images[i], cam_true[i], f"true {_short(classes[y_true[i]])}", fontsize=8)
    at = f" at layer {layer}" if layer else ""
    fig.suptitle(f"Grad-CAM{at} of misclassified test images: predicted class vs true class")
    fig.tight_layout()
    return save(fig, path)


def _show_overlay(ax: Any, image: np.ndarray, cam: np.ndarray, title: str, fontsize: int = 10) -> None:
    ax.imshow(overlay(image, cam), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=fontsize)
    ax.axis("on")


def _short(text: str, limit: int = 14) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
