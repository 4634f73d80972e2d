"""Stateless 1-D pooling kernels over (N, C, L): max, average, and max over time with a mask.

``max_pool1d`` / ``avg_pool1d`` view (N, C, L) as (N, C, 1, L) and run the 2-D kernels of
``cnnlab.functional.pool`` with a 1 x K window, so the semantics are PyTorch's
(``nn.MaxPool1d`` / ``nn.AvgPool1d``: output size, ``-inf`` / zero padding, ceil mode,
first max on ties, the ``count_include_pad`` divisor) and the tests of the 2-D kernels
cover them too.

``global_max_pool1d`` is the text CNN's "max-over-time pooling" (Kim, 2014): one number per
feature map, the largest over all positions. A boolean ``mask`` (N, L), True at real
positions, keeps padded positions from ever winning (they count as ``-inf``).
"""

from __future__ import annotations

import numpy as np

from cnnlab.functional.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

Pair = tuple[int, int]


def _window(kernel_size: int, stride: int | None, padding: int) -> tuple[Pair, Pair, Pair]:
    """The 2-D kernels' (kernel_size, stride, padding) for a 1 x K window along the last axis."""
    step = kernel_size if stride is None else stride
    return (1, kernel_size), (1, step), (0, padding)


def max_pool1d(
    x: np.ndarray, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling along L; returns y (N, C, L_out) and the window index of each max.

    Example:
        >>> y, arg = max_pool1d(np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2)
        >>> y.tolist(), arg.tolist()
        ([[[3.0, 5.0]]], [[[1, 1]]])
    """
    y, arg = max_pool2d(x[:, :, None, :], *_window(kernel_size, stride, padding), ceil_mode)
    return y[:, :, 0, :], arg[:, :, 0, :]  # both (N, C, L_out)


def max_pool1d_backward(
    dy: np.ndarray,
    arg: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of ``max_pool1d``: each dy cell goes to its window's (first) max."""
    N, C, L = x_shape
    window = _window(kernel_size, stride, padding)
    dx = max_pool2d_backward(dy[:, :, None, :], arg[:, :, None, :], (N, C, 1, L), *window, ceil_mode)
    return dx[:, :, 0, :]  # (N, C, L)


def avg_pool1d(
    x: np.ndarray,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling along L (PyTorch's divisor rule).

    Example:
        >>> avg_pool1d(np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2).tolist()
        [[[2.0, 3.5]]]
    """
    window = _window(kernel_size, stride, padding)
    y = avg_pool2d(x[:, :, None, :], *window, ceil_mode, count_include_pad)
    return y[:, :, 0, :]  # (N, C, L_out)


def avg_pool1d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Gradient of ``avg_pool1d``: every window cell receives dy / divisor."""
    N, C, L = x_shape
    window = _window(kernel_size, stride, padding)
    dx = avg_pool2d_backward(dy[:, :, None, :], (N, C, 1, L), *window, ceil_mode, count_include_pad)
    return dx[:, :, 0, :]  # (N, C, L)


def lengths_to_mask(lengths: np.ndarray, length: int) -> np.ndarray:
    """(N,) lengths -> (N, L) boolean mask, True at positions ``t < lengths[n]``.

    Example:
        >>> lengths_to_mask(np.array([2, 4]), 4).astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 1, 1]]
    """
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]  # (N, L)


def global_max_pool1d(x: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Max over time: (N, C, L) -> (N, C), and the position of each max (first on ties).

    ``mask`` (N, L), True at real positions: masked positions count as ``-inf`` and never
    win. Every row of the mask needs at least one True (the caller checks).

    Example:
        >>> x = np.array([[[1.0, 4.0, 9.0]]])
        >>> global_max_pool1d(x)[0].tolist(), global_max_pool1d(x, np.array([[1, 1, 0]], bool))[0].tolist()
        ([[9.0]], [[4.0]])
    """
    scores = x if mask is None else np.where(mask[:, None, :], x, -np.inf)  # (N, C, L)
    arg = scores.argmax(axis=2)  # (N, C)
    y = np.take_along_axis(x, arg[:, :, None], axis=2)[:, :, 0]  # (N, C)
    return y, arg


def global_max_pool1d_backward(dy: np.ndarray, arg: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of ``global_max_pool1d``: dy goes to the winning position, zero elsewhere."""
    dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, L)
    np.put_along_axis(dx, arg[:, :, None], dy[:, :, None], axis=2)
    return dx
