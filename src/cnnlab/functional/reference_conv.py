"""Slow, readable loop versions of 2-D convolution, for learners and for tests.

This is the lecture's picture, one step at a time: slide the filter over the (zero
padded) input with the given stride; at each location take the window under the filter,
multiply element by element with the filter and sum: that number is one pixel of the
feature map. The fast kernels in ``cnnlab.functional.conv`` must agree with these.

Grouped convolution (``Conv2D(groups=g)``, weight (C_out, C_in/g, KH, KW)) is the same loop
with a narrower window: filter o reads only the C_in/g input channels of its group
(``cnnlab.functional.grouped_conv`` is the fast version).
"""

from __future__ import annotations

import numpy as np

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


def _pad(x: np.ndarray, pads: Pads) -> np.ndarray:
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))  # (N, C, Hp, Wp)


def group_channels(o: int, C_in: int, weight_shape: tuple[int, ...]) -> slice:
    """The input channels filter ``o`` reads: all of them, or its group's C_in/groups.

    groups = C_in / (the weight's input channels); filters are split into groups in order.

    Example:
        >>> group_channels(5, 4, (6, 2, 3, 3))  # 2 groups of 3 filters: filter 5 reads channels 2, 3
        slice(2, 4, None)
    """
    C_out, C_group = weight_shape[0], weight_shape[1]
    per_group = C_out // (C_in // C_group)  # filters per group
    c0 = o // per_group * C_group
    return slice(c0, c0 + C_group)


def conv2d_forward_loop(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """y[n, o, r, s] = sum over (c, i, j) of window[c, i, j] * weight[o, c, i, j] + bias[o].

    Example:
        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> conv2d_forward_loop(x, np.ones((1, 1, 2, 2)), None, stride=(2, 2))[0, 0]
        array([[10., 18.],
               [42., 50.]])
    """
    N = x.shape[0]
    C_out, _, KH, KW = weight.shape
    SH, SW = stride
    DH, DW = dilation
    xp = _pad(x, pads)
    H_out = (xp.shape[2] - DH * (KH - 1) - 1) // SH + 1
    W_out = (xp.shape[3] - DW * (KW - 1) - 1) // SW + 1
    y = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))
    for n in range(N):
        for o in range(C_out):
            for r in range(H_out):
                for s in range(W_out):
                    # The window under the filter: every DH-th row from r*SH, every DW-th column.
                    rows = slice(r * SH, r * SH + DH * (KH - 1) + 1, DH)
                    cols = slice(s * SW, s * SW + DW * (KW - 1) + 1, DW)
                    window = xp[
                        n, group_channels(o, x.shape[1], weight.shape), rows, cols
                    ]  # (C_in/g, KH, KW)
                    y[n, o, r, s] = np.sum(window * weight[o])
            if bias is not None:
                y[n, o] += bias[o]
    return y


def conv2d_backward_loop(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of ``conv2d_forward_loop``, one output pixel at a time.

    Each output pixel y[n, o, r, s] = sum(window * weight[o]) + bias[o] sends back:
    to the bias, dy; to the filter, dy * window (summed over every location and sample:
    the filter is shared); to the window's input pixels, dy * filter.

    Example:
        >>> ones = np.ones((1, 1, 2, 2))
        >>> dx, dW, db = conv2d_backward_loop(np.ones((1, 1, 1, 1)), ones, ones)
        >>> dx[0, 0], db
        (array([[1., 1.],
               [1., 1.]]), array([1.]))
    """
    N, _, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    _, _, H_out, W_out = dy.shape
    SH, SW = stride
    DH, DW = dilation
    top, _, left, _ = pads
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp, dtype=np.result_type(x, weight, dy))
    dW = np.zeros(weight.shape, dtype=dxp.dtype)
    db = np.zeros(C_out, dtype=dxp.dtype)
    for n in range(N):
        for o in range(C_out):
            for r in range(H_out):
                for s in range(W_out):
                    rows = slice(r * SH, r * SH + DH * (KH - 1) + 1, DH)
                    cols = slice(s * SW, s * SW + DW * (KW - 1) + 1, DW)
                    c = group_channels(o, x.shape[1], weight.shape)  # all input channels, or o's group
                    g = dy[n, o, r, s]
                    db[o] += g
                    dW[o] += g * xp[n, c, rows, cols]
                    dxp[n, c, rows, cols] += g * weight[o]
    dx = dxp[:, :, top : top + H, left : left + W]  # drop the padding: it is not an input
    return dx, dW, db
