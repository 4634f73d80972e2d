"""Adaptive average pooling: windows chosen so that any input size gives a fixed output size.

Output cell ``i`` of an axis of length ``size`` pooled to ``out`` cells averages the input
cells ``floor(i * size / out)`` up to ``ceil((i + 1) * size / out)`` (exclusive): PyTorch's
``adaptive_avg_pool2d`` rule. Windows may overlap and differ in length when ``out`` does not
divide ``size``; when ``out > size`` cells repeat. The average over a rectangle is the
average over its rows of the average over its columns, so the pooling is two small matrix
products with the averaging matrices ``A_H`` (OH, H) and ``A_W`` (OW, W):

    y = A_H x A_W^T          (N, C, OH, OW)
    dx = A_H^T dy A_W        (N, C, H, W)   (the transpose of a linear map)
"""

from __future__ import annotations

import numpy as np


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of each of the ``out`` windows over an axis of length ``size``.

    Example:
        >>> adaptive_windows(5, 3)
        [(0, 2), (1, 4), (3, 5)]
    """
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_matrix(size: int, out: int, dtype: np.dtype) -> np.ndarray:
    """The (out, size) matrix whose row i averages window i."""
    matrix = np.zeros((out, size), dtype=dtype)
    for i, (start, end) in enumerate(adaptive_windows(size, out)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool2d(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW), each cell the mean of its window."""
    H, W = x.shape[2:]
    a_h = adaptive_matrix(H, output_size[0], x.dtype)  # (OH, H)
    a_w = adaptive_matrix(W, output_size[1], x.dtype)  # (OW, W)
    return np.matmul(np.matmul(a_h, x), a_w.T)  # (N, C, OH, W) then (N, C, OH, OW)


def adaptive_avg_pool2d_backward(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """dL/dx: each cell of ``dy`` spread evenly over its window, ``A_H^T dy A_W``."""
    H, W = x_shape[2:]
    OH, OW = dy.shape[2:]
    a_h = adaptive_matrix(H, OH, dy.dtype)  # (OH, H)
    a_w = adaptive_matrix(W, OW, dy.dtype)  # (OW, W)
    return np.matmul(np.matmul(a_h.T, dy), a_w)  # (N, C, H, OW) then (N, C, H, W)
