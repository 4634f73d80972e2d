"""Slow, readable loop versions of max and average pooling, for learners and tests.

Each output cell is computed by walking its window explicitly, with PyTorch's rules written
out (no padded copy of the input): the window of output row ``oh`` covers input rows
``oh*S - P`` to ``oh*S - P + K - 1`` (P: the top padding); rows outside ``[0, H)`` are padding.
``padding`` may be ONNX's four pads ``(top, left, bottom, right)``. The fast kernels
in ``functional/pool.py`` must agree with these to rounding error.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.errors import int_pair
from cnnlab.functional.pool import Padding, Pair, pool_output_size, pool_pads


def _args(
    shape: tuple[int, ...],
    kernel_size: int | Pair,
    stride: int | Pair | None,
    padding: Padding,
    ceil_mode: bool,
) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """KH, KW, SH, SW, PH, PW (top, left), H_out, W_out, PH_end, PW_end (bottom, right)."""
    KH, KW = int_pair("pool2d_loops", "kernel_size", kernel_size)
    SH, SW = (KH, KW) if stride is None else int_pair("pool2d_loops", "stride", stride)
    PH, PW, PH_end, PW_end = pool_pads("pool2d_loops", padding)
    H_out = pool_output_size(shape[2], KH, SH, PH, ceil_mode, PH_end)
    W_out = pool_output_size(shape[3], KW, SW, PW, ceil_mode, PW_end)
    return KH, KW, SH, SW, PH, PW, H_out, W_out, PH_end, PW_end


def max_pool2d_loops(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling; returns the output and the flat input index ``h*W + w`` of each max.

    Padding acts as ``-inf``: it never wins, so only input cells are visited. The scan is in
    row-major order with a strict ``>``, so ties keep the first max (PyTorch's choice).

    Example:
        >>> y, where = max_pool2d_loops(np.array([[[[0., 2.], [2., 1.]]]]), 2)
        >>> y.ravel().tolist(), where.ravel().tolist()
        ([2.0], [1])
    """
    N, C, H, W = x.shape
    KH, KW, SH, SW, PH, PW, H_out, W_out, _, _ = _args(x.shape, kernel_size, stride, padding, ceil_mode)
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    where = np.zeros((N, C, H_out, W_out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                for ow in range(W_out):
                    best, best_at = -math.inf, -1
                    for h in range(oh * SH - PH, oh * SH - PH + KH):
                        for w in range(ow * SW - PW, ow * SW - PW + KW):
                            if 0 <= h < H and 0 <= w < W and (best_at < 0 or x[n, c, h, w] > best):
                                best, best_at = x[n, c, h, w], h * W + w
                    y[n, c, oh, ow] = best
                    where[n, c, oh, ow] = best_at
    return y, where


def max_pool2d_backward_loops(dy: np.ndarray, where: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Each output gradient is added to the input cell that won its window."""
    N, C, _, W = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(dy.shape[2]):
                for ow in range(dy.shape[3]):
                    h, w = divmod(int(where[n, c, oh, ow]), W)
                    dx[n, c, h, w] += dy[n, c, oh, ow]  # overlapping windows add up
    return dx


def _window(o: int, S: int, P: int, K: int, size: int, include_pad: bool, P_end: int) -> tuple[int, int, int]:
    """Input range ``[start, end)`` of window ``o`` along one axis, and its divisor length."""
    start = o * S - P
    end = min(start + K, size + P_end)  # ceil mode may run past the right padding: clip
    length = end - start  # counts the padding (count_include_pad=True)
    start, end = max(start, 0), min(end, size)
    return start, end, length if include_pad else end - start


def avg_pool2d_loops(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling: sum of the input cells of each window over PyTorch's divisor.

    Example:
        >>> avg_pool2d_loops(np.ones((1, 1, 2, 2)), 2, padding=1).ravel().tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    N, C, H, W = x.shape
    KH, KW, SH, SW, PH, PW, H_out, W_out, PHe, PWe = _args(x.shape, kernel_size, stride, padding, ceil_mode)
    y = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                h0, h1, dh = _window(oh, SH, PH, KH, H, count_include_pad, PHe)
                for ow in range(W_out):
                    w0, w1, dw = _window(ow, SW, PW, KW, W, count_include_pad, PWe)
                    y[n, c, oh, ow] = x[n, c, h0:h1, w0:w1].sum() / (dh * dw)
    return y


def avg_pool2d_backward_loops(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Every input cell of a window receives the window's ``dy / divisor``."""
    N, C, H, W = x_shape
    KH, KW, SH, SW, PH, PW, H_out, W_out, PHe, PWe = _args(x_shape, kernel_size, stride, padding, ceil_mode)
    dx = np.zeros(x_shape, dtype=dy.dtype)
    for n in range(N):
        for c in range(C):
            for oh in range(H_out):
                h0, h1, dh = _window(oh, SH, PH, KH, H, count_include_pad, PHe)
                for ow in range(W_out):
                    w0, w1, dw = _window(ow, SW, PW, KW, W, count_include_pad, PWe)
                    dx[n, c, h0:h1, w0:w1] += dy[n, c, oh, ow] / (dh * dw)
    return dx
