"""Stateless 1-D convolution kernels (im2col + GEMM), forward and backward, over (N, C, L).

A 1-D convolution is a 2-D one whose input has height 1 and whose filters have height 1:
(N, C, L) is viewed as (N, C, 1, L) and (C_out, C_in, K) as (C_out, C_in, 1, K), and the
2-D kernels of ``cnnlab.functional.conv`` run unchanged (im2col over the time axis, one
GEMM forward, two backward, col2im by K strided adds). The views are free: no copy is made
for the reshape, and the height-1 axis costs nothing in the column matrix:

    y (C_out, N*L_out) = weight (C_out, C_in*K) @ cols (C_in*K, N*L_out) + bias

Measured on the text CNN's shape, (64, 300, 200) -> 100 maps, widths 3/4/5, forward +
backward (benchmarks/bench_text_layers.py, 2 shared cores): 0.93-1.04x the time of a
hand-written 1-D im2col + GEMM, so there is one convolution engine to trust, not two.

The readable version, plain loops over samples, filters and positions, is
``conv1d_forward_loop`` / ``conv1d_backward_loop`` below; the tests hold the fast kernels
to the same numbers.
"""

from __future__ import annotations

import numpy as np

from cnnlab.functional.conv import (
    ConvWorkspace,
    SavedConv,
    conv2d_backward,
    conv2d_backward_saved,
    conv2d_forward_saving,
)
from cnnlab.functional.im2col import out_size

Pads1D = tuple[int, int]  # (left, right)


def conv1d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads1D = (0, 0),
    stride: int = 1,
    dilation: int = 1,
    workspace: ConvWorkspace | None = None,
) -> np.ndarray:
    """1-D cross-correlation over (N, C_in, L); computes in ``weight.dtype``.

    ``conv1d_forward_saving`` also returns what ``conv1d_backward_saved`` needs.

    Args:
        x: input (N, C_in, L).
        weight: filters (C_out, C_in, K).
        bias: (C_out,) or None.
        pads: zeros added (left, right).
        stride, dilation: ints.
        workspace: buffers reused between calls.

    Returns:
        y (N, C_out, L_out), L_out = floor((L + left + right - D*(K-1) - 1) / S) + 1; a view
        of (C_out, N, L_out) memory.

    Example:
        >>> x = np.arange(5.0).reshape(1, 1, 5)
        >>> conv1d_forward(x, np.ones((1, 1, 3)), None, pads=(1, 1))[0, 0]
        array([1., 3., 6., 9., 7.])
    """
    return conv1d_forward_saving(x, weight, bias, pads, stride, dilation, workspace)[0]


def conv1d_forward_saving(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads1D = (0, 0),
    stride: int = 1,
    dilation: int = 1,
    workspace: ConvWorkspace | None = None,
) -> tuple[np.ndarray, SavedConv]:
    """``conv1d_forward`` and the 2-D call's ``SavedConv`` (for ``conv1d_backward_saved``)."""
    x4 = x[:, :, None, :]  # (N, C_in, 1, L), a view
    w4 = weight[:, :, None, :]  # (C_out, C_in, 1, K), a view
    y4, saved = conv2d_forward_saving(
        x4, w4, bias, (0, 0, *pads), (1, stride), (1, dilation), workspace
    )  # (N, C_out, 1, L_out)
    return y4[:, :, 0, :], saved  # (N, C_out, L_out)


def conv1d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads1D = (0, 0),
    stride: int = 1,
    dilation: int = 1,
    need_dx: bool = True,
    workspace: ConvWorkspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``conv1d_forward`` given dL/dy (N, C_out, L_out): (dx or None, dW, db).

    Example:
        >>> x, w = np.ones((1, 1, 4)), np.ones((1, 1, 2))
        >>> dx, dW, db = conv1d_backward(np.ones((1, 1, 3)), x, w)
        >>> dx[0, 0], dW[0, 0], db  # windows covering each position; taps summed over positions
        (array([1., 2., 2., 1.]), array([3., 3.]), array([3.]))
    """
    x4 = x[:, :, None, :]  # (N, C_in, 1, L)
    w4 = weight[:, :, None, :]  # (C_out, C_in, 1, K)
    dy4 = dy[:, :, None, :]  # (N, C_out, 1, L_out)
    dx4, dW4, db = conv2d_backward(
        dy4, x4, w4, (0, 0, *pads), (1, stride), (1, dilation), need_dx=need_dx, workspace=workspace
    )
    dx = None if dx4 is None else dx4[:, :, 0, :]  # (N, C_in, L)
    return dx, dW4[:, :, 0, :], db  # dW: (C_out, C_in, K), db: (C_out,)


def conv1d_backward_saved(
    dy: np.ndarray, saved: SavedConv, weight: np.ndarray, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of the ``conv1d_forward_saving`` call that returned ``saved`` (reuses its columns).

    Example:
        >>> x, w = np.ones((1, 1, 4)), np.ones((1, 1, 2))
        >>> y, saved = conv1d_forward_saving(x, w, None)
        >>> dx, dW, db = conv1d_backward_saved(np.ones_like(y), saved, w)
        >>> dx[0, 0], dW[0, 0], db
        (array([1., 2., 2., 1.]), array([3., 3.]), array([3.]))
    """
    dy4 = dy[:, :, None, :]  # (N, C_out, 1, L_out)
    dx4, dW4, db = conv2d_backward_saved(dy4, saved, weight[:, :, None, :], need_dx=need_dx)
    dx = None if dx4 is None else dx4[:, :, 0, :]  # (N, C_in, L)
    return dx, dW4[:, :, 0, :], db  # dW: (C_out, C_in, K), db: (C_out,)


# ---- the readable reference ----------------------------------------------------------------
def conv1d_forward_loop(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads1D = (0, 0),
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """y[n, o, t] = sum over (c, k) of xp[n, c, t*S + k*D] * weight[o, c, k] + bias[o].

    Example:
        >>> conv1d_forward_loop(np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 2)), None, stride=2)
        array([[[1., 5.]]])
    """
    N = x.shape[0]
    C_out, _, K = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads))  # (N, C_in, L + left + right)
    L_out = out_size(xp.shape[2], 0, K, stride, dilation)
    y = np.zeros((N, C_out, L_out), dtype=np.result_type(x, weight))
    for n in range(N):
        for o in range(C_out):
            for t in range(L_out):
                window = xp[n, :, t * stride : t * stride + dilation * (K - 1) + 1 : dilation]  # (C_in, K)
                y[n, o, t] = np.sum(window * weight[o]) + (0 if bias is None else bias[o])
    return y


def conv1d_backward_loop(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads1D = (0, 0),
    stride: int = 1,
    dilation: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each output position sends dy back to its window: dx += dy * w, dW += dy * window, db += dy."""
    N, L = x.shape[0], x.shape[2]
    C_out, _, K = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads))  # (N, C_in, Lp)
    dxp = np.zeros_like(xp, dtype=np.result_type(dy, weight))  # (N, C_in, Lp)
    dW = np.zeros_like(weight, dtype=dxp.dtype)  # (C_out, C_in, K)
    for n in range(N):
        for o in range(C_out):
            for t in range(dy.shape[2]):
                taps = slice(t * stride, t * stride + dilation * (K - 1) + 1, dilation)
                dxp[n, :, taps] += dy[n, o, t] * weight[o]
                dW[o] += dy[n, o, t] * xp[n, :, taps]
    return dxp[:, :, pads[0] : pads[0] + L], dW, dy.sum(axis=(0, 2))
