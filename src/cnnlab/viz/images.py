"""Pictures of images and weights: misclassified test images, filters, feature maps.

- misclassified: what the network gets wrong, with its confidence (softmax probability);
- filters: the first conv layer's kernels, which learn edge and blob detectors;
- feature maps: one image after every conv/pool layer (the lecture's "feature map"),
  shrinking in space and growing in channels with depth.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.viz.figure import new_figure, save, show_image

#: Grid columns and pixels per cell of the misclassified and filter grids.
MISCLASSIFIED_COLUMNS, MISCLASSIFIED_CELL = 8, 150
FILTER_COLUMNS, FILTER_CELL = 8, 100
#: Channels drawn per layer and pixels per cell of the feature-map grid.
MAP_CHANNELS, MAP_CELL, MAP_LABEL_WIDTH = 8, 110, 260


def grid_size(count: int, columns: int, cell: int, extra_height: int = 50) -> tuple[int, int]:
    """Pixel size of a grid of ``count`` cells: ``(columns * cell, rows * cell + extra_height)``."""
    rows = max(1, math.ceil(count / columns))
    return columns * cell, rows * cell + extra_height


def plot_misclassified(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    max_images: int = 32,
) -> Path:
    """Grid of the first ``max_images`` images with ``y_pred != y_true``, most confident first.

    Args:
        images: ``(N, C, H, W)`` test images (not normalized, values in [0, 1]).
        y_true, y_pred: ``(N,)`` class indices.
        confidence: ``(N,)`` softmax probability of the predicted class.
        classes: class names.
        path: where the PNG goes; size ``grid_size(shown, MISCLASSIFIED_COLUMNS, MISCLASSIFIED_CELL)``.
    """
    wrong = np.flatnonzero(np.asarray(y_pred) != np.asarray(y_true))
    wrong = wrong[np.argsort(-np.asarray(confidence)[wrong], kind="stable")][:max_images]
    fig = new_figure(*grid_size(len(wrong), MISCLASSIFIED_COLUMNS, MISCLASSIFIED_CELL))
    if len(wrong) == 0:
        fig.text(0.5, 0.5, "no misclassified test images", ha="center", va="center", fontsize=14)
        return save(fig, path)
    rows = math.ceil(len(wrong) / MISCLASSIFIED_COLUMNS)
    axes = fig.subplots(rows, MISCLASSIFIED_COLUMNS, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        title = f"true {_short(classes[y_true[i]])}\npred {_short(classes[y_pred[i]])} ({confidence[i]:.2f})"
        show_image(ax, images[i], title, fontsize=8)
        ax.axis("on")
    fig.suptitle(f"Misclassified test images ({len(wrong)} shown, most confident first)")
    fig.tight_layout()
    return save(fig, path)


def plot_filters(weight: np.ndarray, path: str | os.PathLike[str], max_filters: int = 64) -> Path:
    """Draw a conv layer's kernels ``(C_out, C_in, KH, KW)`` as small images.

    Kernels with 3 input channels are drawn in colour; otherwise input channel 0 in grey.
    Each kernel is rescaled to its own min..max. Size ``grid_size(n, FILTER_COLUMNS, FILTER_CELL)``.
    """
    w = np.asarray(weight, dtype=np.float64)[:max_filters]  # (n, C_in, KH, KW)
    n, c_in, kh, kw = w.shape
    fig = new_figure(*grid_size(n, FILTER_COLUMNS, FILTER_CELL))
    axes = fig.subplots(math.ceil(n / FILTER_COLUMNS), FILTER_COLUMNS, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        show_image(ax, w[i] if c_in == 3 else w[i, :1], f"filter {i}", fontsize=8)
        ax.axis("on")
    note = "" if c_in in (1, 3) else f", input channel 0 of {c_in}"
    fig.suptitle(f"First conv layer: {n} filters of {kh}x{kw}{note} (each rescaled: light = larger weight)")
    fig.tight_layout()
    return save(fig, path)


def feature_maps_size(layers: int) -> tuple[int, int]:
    """Pixel size of the feature-map grid for ``layers`` conv/pool layers (plus the input row)."""
    return MAP_LABEL_WIDTH + MAP_CHANNELS * MAP_CELL, (layers + 1) * MAP_CELL + 50


def plot_feature_maps(
    image: np.ndarray,
    maps: Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike[str],
    title: str = "Feature maps of one test image",
) -> Path:
    """One row per layer: the first ``MAP_CHANNELS`` channels of its output for one image.

    Args:
        image: ``(C, H, W)`` input image (drawn in the first row).
        maps: ``(label, output)`` from ``probe.feature_maps``, output ``(1, C, H, W)`` or ``(C, H, W)``.
        path: where the PNG goes; size ``feature_maps_size(len(maps))``.
    """
    width, height = feature_maps_size(len(maps))
    fig = new_figure(width, height)
    axes = fig.subplots(len(maps) + 1, MAP_CHANNELS, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    c, h, w = image.shape
    show_image(axes[0, 0], image)
    axes[0, 0].axis("on")
    axes[0, 0].set_ylabel(f"input\n{c}x{h}x{w}", rotation=0, ha="right", va="center", fontsize=9)
    for row, (label, out) in enumerate(maps, start=1):
        out = out[0] if out.ndim == 4 else out  # (C, H, W)
        channels = out.shape[0]
        for j in range(min(channels, MAP_CHANNELS)):
            show_image(axes[row, j], out[j])
            axes[row, j].axis("on")
        shape = "x".join(map(str, out.shape))
        name, _, args = label.partition("(")  # "0: Conv2D(1, 32, ...)" -> two lines
        text = f"{name}\n({_short(args, 40)}\n{shape}" if args else f"{name}\n{shape}"
        axes[row, 0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{title} (first {MAP_CHANNELS} channels per layer)")
    fig.subplots_adjust(
        left=MAP_LABEL_WIDTH / width, right=0.99, top=1 - 40 / height, bottom=0.01, wspace=0.08, hspace=0.12
    )
    return save(fig, path)


def _short(text: str, limit: int = 14) -> str:
    """Shorten a label so it fits its cell (long folder names, layer reprs)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
