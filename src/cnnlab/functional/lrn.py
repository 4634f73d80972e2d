"""Local response normalization across channels (AlexNet), forward beside backward.

PyTorch's definition (``torch.nn.functional.local_response_norm``)::

    d_c = k + alpha / size * sum(x_c'^2 for c' in the window of c)
    y_c = x_c * d_c^(-beta)

The window of channel c is channels ``c - size//2 ... c + (size-1)//2``, clipped to the
existing channels (missing ones count as 0, and the divisor stays ``size``). For an odd
``size`` this is also ONNX's ``LRN``; for an even size ONNX puts the extra channel after c
instead of before it.

Backward (chain rule; the window sum links x_j to every d_c whose window holds j)::

    dx_j = dy_j * d_j^(-beta)
           - 2 * alpha * beta / size * x_j * sum(dy_c * x_c * d_c^(-beta-1) for c whose window holds j)

"c whose window holds j" is the mirrored window ``j - (size-1)//2 ... j + size//2``.
"""

from __future__ import annotations

import numpy as np


def channel_window_sum(v: np.ndarray, before: int, after: int) -> np.ndarray:
    """``out[:, c] = sum(v[:, c - before : c + after + 1])`` along axis 1, clipped to the channels.

    One shifted slice add per window offset (a window is a few channels).

    Example:
        >>> channel_window_sum(np.arange(4.0).reshape(1, 4), 1, 1).tolist()
        [[1.0, 3.0, 6.0, 5.0]]
    """
    C = v.shape[1]
    out = np.zeros_like(v)
    for off in range(-before, after + 1):
        lo, hi = max(0, -off), min(C, C - off)  # out channels c with 0 <= c + off < C
        if lo < hi:
            out[:, lo:hi] += v[:, lo + off : hi + off]
    return out


def local_response_norm(
    x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """LRN over axis 1 of (N, C, ...); returns ``y`` and the divisor base ``d`` backward needs.

    Example:
        >>> y, d = local_response_norm(np.ones((1, 3, 1, 1)), size=3, alpha=3.0, beta=1.0)
        >>> y.ravel().tolist()  # d = 1 + 3/3 * (number of channels in the window)
        [0.3333333333333333, 0.25, 0.3333333333333333]
    """
    square_sum = channel_window_sum(x * x, size // 2, (size - 1) // 2)  # (N, C, ...)
    d = k + (alpha / size) * square_sum  # (N, C, ...)
    return x * d**-beta, d


def local_response_norm_backward(
    dy: np.ndarray, x: np.ndarray, d: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75
) -> np.ndarray:
    """dL/dx of ``local_response_norm`` from ``dy``, the input ``x`` and the forward's ``d``."""
    scale = d**-beta  # (N, C, ...)
    t = dy * x * scale / d  # dy_c * x_c * d_c^(-beta-1)
    back = channel_window_sum(t, (size - 1) // 2, size // 2)  # the mirrored window
    return dy * scale - (2 * alpha * beta / size) * x * back
