"""Bilinear resizing of heatmaps, PyTorch's ``align_corners=False`` convention (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.errors import ShapeError


def bilinear_resize(maps: np.ndarray, size: tuple[int, int] | Sequence[int]) -> np.ndarray:
    """Bilinear upsampling (or downsampling) of ``(N, h, w)`` maps to ``size`` = (H, W).

    The convention of ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)`` with ``size`` given: pixel centers are aligned, output pixel o
    samples the input at s = (o + 0.5) * h / H - 0.5, clamped to [0, h - 1], between the
    two nearest pixels with weights 1 - frac(s) and frac(s). No antialiasing.

    Shape:
        - Input: (N, h, w)
        - Output: (N, H, W)

    Example:
        >>> bilinear_resize(np.array([[[0.0, 1.0]]]), (1, 4)).tolist()
        [[[0.0, 0.25, 0.75, 1.0]]]
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ShapeError(f"bilinear_resize: maps must have shape (N, h, w). Received: shape {maps.shape}")
    out_h, out_w = (int(s) for s in size)
    rows0, rows1, wy = _sample_points(maps.shape[1], out_h)  # (H,), (H,), (H,)
    cols0, cols1, wx = _sample_points(maps.shape[2], out_w)  # (W,), (W,), (W,)
    wy, wx = wy.astype(maps.dtype)[:, None], wx.astype(maps.dtype)[None, :]
    top = maps[:, rows0][:, :, cols0] * (1 - wx) + maps[:, rows0][:, :, cols1] * wx  # (N, H, W)
    bottom = maps[:, rows1][:, :, cols0] * (1 - wx) + maps[:, rows1][:, :, cols1] * wx  # (N, H, W)
    return top * (1 - wy) + bottom * wy  # (N, H, W)


def _sample_points(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left index, right index and right weight of each output pixel (align_corners=False)."""
    src = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    src = np.clip(src, 0, size_in - 1)  # torch clamps below at 0; the top clamp is i1's min
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, size_in - 1)
    return i0, i1, src - i0
