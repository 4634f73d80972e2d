"""Grouped and depthwise 2-D convolution, forward and backward (stateless kernels).

With ``groups = g`` the C_in input channels and the C_out filters are split into g equal
groups; filter group k sees only input group k, so the weight is (C_out, C_in/g, KH, KW)
(PyTorch's layout) and the cost is 1/g of a full convolution::

    y[:, group k] = conv(x[:, group k], weight[group k]) + bias[group k]

Two paths:

- ``grouped_conv2d_forward/backward`` (C_in/g > 1, e.g. AlexNet's g=2, ShuffleNet's g=3..8):
  one ordinary im2col + GEMM convolution per group (``cnnlab.functional.conv``), results
  written side by side. The gradients split the same way: each group's dx, dW and db come
  from its own backward.
- ``depthwise_conv2d_forward/backward`` (g = C_in: one input channel per group, MobileNet):
  a GEMM with one input channel would be a long, thin product, so instead the KH*KW kernel
  taps are a loop of whole-array multiply-adds, the way pooling walks its window::

      y[c*m + q] = sum over taps (i, j) of weight[c*m + q, 0, i, j] * x_padded[c] shifted by (i, j)

  (m = C_out / C_in filters per channel, the "depth multiplier"). Backward, per tap:
  dx_padded[c] shifted by (i, j) += sum over q of weight[c*m + q, 0, i, j] * dy[c*m + q]
  (the transpose of the same shift), and dW[c*m + q, 0, i, j] = sum over (n, h, w) of
  dy[c*m + q] * x_padded[c] shifted by (i, j): one ``einsum`` of dy with each tap. The
  loops run over taps, never over channels or pixels; blocks of channels run on all cores
  (``split_channels``), each block small enough to stay in cache across the taps.

Memory layout as ``cnnlab.functional.conv``: outputs and dx are NCHW views of channel-first
(C, N, H, W) memory. The readable version is the loop of
``cnnlab.functional.reference_conv.conv2d_forward_loop`` (and ``conv2d_backward_loop``), which
takes grouped weights; tests/layers/test_grouped_conv.py holds both to it and to PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.functional.conv import ConvWorkspace, SavedConv, conv2d_backward_saved, conv2d_forward_saving
from cnnlab.functional.im2col import out_size, pad_into
from cnnlab.utils import split_channels

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)

#: Bytes of padded input one thread handles per block of channels (kept in L2 across the taps).
BLOCK_BYTES = 2**19


# ---- general groups: one im2col convolution per group --------------------------------------
def grouped_conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    groups: int,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    workspaces: Sequence[ConvWorkspace] | None = None,
) -> tuple[np.ndarray, list[SavedConv]]:
    """Grouped convolution as ``groups`` ordinary ones; returns ``y`` and each group's ``SavedConv``.

    Pass the returned list to ``grouped_conv2d_backward``: each group's backward reuses its
    forward's column matrix.

    Args:
        x: input (N, C_in, H, W).
        weight: (C_out, C_in / groups, KH, KW).
        bias: (C_out,) or None.
        groups: number of groups (divides C_in and C_out).
        workspaces: one ``ConvWorkspace`` per group, or None for fresh ones.

    Returns:
        y (N, C_out, H_out, W_out), an NCHW view of (C_out, N, H_out, W_out) memory, and what
        each group's backward needs (its input view, geometry and columns).

    Example:
        >>> x = np.ones((1, 4, 3, 3))
        >>> w = np.stack([np.full((2, 3, 3), 1.0), np.full((2, 3, 3), 2.0)])  # (2, 2, 3, 3)
        >>> y, _ = grouped_conv2d_forward(x, w, None, groups=2)
        >>> y.ravel().tolist()  # each filter sums 2 channels x 9 taps of its own group
        [18.0, 36.0]
    """
    N, C_in = x.shape[:2]
    C_out = weight.shape[0]
    cin, cout = C_in // groups, C_out // groups
    ws = list(workspaces) if workspaces is not None else [ConvWorkspace() for _ in range(groups)]
    parts = [x[:, k * cin : (k + 1) * cin] for k in range(groups)]  # (N, C_in/g, H, W) views
    y = None
    saved: list[SavedConv] = []
    for k, part in enumerate(parts):
        rows = slice(k * cout, (k + 1) * cout)
        b = None if bias is None else bias[rows]
        yk, saved_k = conv2d_forward_saving(part, weight[rows], b, pads, stride, dilation, ws[k])
        saved.append(saved_k)  # yk: (N, C_out/g, Ho, Wo)
        if y is None:
            y = np.empty((C_out, N, *yk.shape[2:]), weight.dtype)  # (C_out, N, H_out, W_out)
        y[rows] = yk.transpose(1, 0, 2, 3)
    assert y is not None  # groups >= 1
    return y.transpose(1, 0, 2, 3), saved  # (N, C_out, H_out, W_out), a view


def grouped_conv2d_backward(
    dy: np.ndarray, saved: Sequence[SavedConv], weight: np.ndarray, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``grouped_conv2d_forward``: (dx or None, dW, db), each group's from its own backward.

    Example:
        >>> x, w = np.ones((1, 2, 2, 2)), np.ones((2, 1, 2, 2))
        >>> y, saved = grouped_conv2d_forward(x, w, None, groups=2)
        >>> dx, dW, db = grouped_conv2d_backward(np.ones_like(y), saved, w)
        >>> dx.shape, dW.ravel().tolist(), db.tolist()
        ((1, 2, 2, 2), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0])
    """
    groups = len(saved)
    N, cin, H, W = saved[0].x.shape
    C_out = weight.shape[0]
    cout = C_out // groups
    dxc = np.empty((groups * cin, N, H, W), weight.dtype) if need_dx else None  # (C_in, N, H, W)
    dW = np.empty_like(weight)  # (C_out, C_in/g, KH, KW)
    db = np.empty(C_out, weight.dtype)  # (C_out,)
    for k, saved_k in enumerate(saved):
        rows = slice(k * cout, (k + 1) * cout)
        dxk, dW[rows], db[rows] = conv2d_backward_saved(dy[:, rows], saved_k, weight[rows], need_dx=need_dx)
        if dxc is not None:
            dxc[k * cin : (k + 1) * cin] = dxk.transpose(1, 0, 2, 3)  # type: ignore[union-attr]
    return None if dxc is None else dxc.transpose(1, 0, 2, 3), dW, db


# ---- depthwise: one input channel per group -------------------------------------------------
def _taps(
    a: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair
) -> list[tuple[int, int, np.ndarray]]:
    """``(i, j, view)`` per kernel tap: the cells of channel-first ``a`` (c, N, Hp, Wp) that tap reads."""
    (SH, SW), (DH, DW), (H_out, W_out) = stride, dilation, out
    return [
        (
            i,
            j,
            a[:, :, i * DH : i * DH + SH * (H_out - 1) + 1 : SH, j * DW : j * DW + SW * (W_out - 1) + 1 : SW],
        )
        for i in range(kernel[0])
        for j in range(kernel[1])
    ]


def _channel_block(per_channel_bytes: int) -> int:
    return max(1, BLOCK_BYTES // max(per_channel_bytes, 1))


def _blocks(fn: object, C: int, work: int, block: int) -> None:
    """Run ``fn(c0, c1)`` over channel blocks of at most ``block``, the blocks spread over cores."""

    def run(c0: int, c1: int) -> None:
        for b0 in range(c0, c1, block):
            fn(b0, min(c1, b0 + block))  # type: ignore[operator]

    split_channels(run, C, work)


def _padded_cnhw(x: np.ndarray, pads: Pads, dtype: np.dtype) -> np.ndarray:
    """x as channel-first (C, N, Hp, Wp) with a zero border (a view when there is no padding)."""
    N, C, H, W = x.shape
    if not any(pads) and x.dtype == dtype:
        return x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    top, bottom, left, right = pads
    xp = np.zeros((C, N, H + top + bottom, W + left + right), dtype)  # (C, N, Hp, Wp)
    return pad_into(x, xp, pads)


def depthwise_conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """Depthwise convolution (groups = C_in): each input channel has its own C_out/C_in filters.

    Args:
        x: input (N, C_in, H, W).
        weight: (C_out, 1, KH, KW), C_out a multiple of C_in; filters c*m ... c*m + m - 1
            read input channel c.
        bias: (C_out,) or None.

    Returns:
        y (N, C_out, H_out, W_out), an NCHW view of (C_out, N, H_out, W_out) memory.

    Example:
        >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
        >>> w = np.stack([np.ones((1, 2, 2)), -np.ones((1, 2, 2))])  # channel 0: +sum, 1: -sum
        >>> depthwise_conv2d_forward(x, w, None).ravel().tolist()
        [6.0, -22.0]
    """
    N, C, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    m = C_out // C
    dtype = weight.dtype
    top, bottom, left, right = pads
    out = (
        out_size(H, top + bottom, KH, stride[0], dilation[0]),
        out_size(W, left + right, KW, stride[1], dilation[1]),
    )
    xp = _padded_cnhw(x, pads, dtype)  # (C, N, Hp, Wp)
    w = weight.reshape(C, m, KH * KW)  # (C, m, KH*KW)
    y = np.empty((C, m, N, *out), dtype)  # (C, m, N, H_out, W_out) = (C_out, N, H_out, W_out)
    taps = _taps(xp, (KH, KW), stride, dilation, out)

    def work(c0: int, c1: int) -> None:
        acc = y[c0:c1]  # (c, m, N, H_out, W_out)
        tmp = np.empty_like(acc)
        for t, (_, _, tap) in enumerate(taps):
            wt = w[c0:c1, :, t, None, None, None]  # (c, m, 1, 1, 1)
            if t == 0:
                np.multiply(tap[c0:c1, None], wt, out=acc)
            else:
                np.multiply(tap[c0:c1, None], wt, out=tmp)
                acc += tmp
        if bias is not None:
            acc += bias.reshape(C, m)[c0:c1, :, None, None, None].astype(dtype, copy=False)

    _blocks(work, C, y.size * KH * KW, _channel_block(xp[0].nbytes + y[0].nbytes))
    return y.reshape(C_out, N, *out).transpose(1, 0, 2, 3)  # (N, C_out, H_out, W_out), a view


def depthwise_conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    need_dx: bool = True,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``depthwise_conv2d_forward`` given dL/dy: (dx or None, dW, db).

    Example:
        >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
        >>> dx, dW, db = depthwise_conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
        >>> dx[0, 0].tolist(), dW.ravel().tolist(), db.tolist()
        ([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], [4.0, 4.0, 4.0, 4.0], [4.0])
    """
    N, C, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    m = C_out // C
    dtype = weight.dtype
    out = dy.shape[2:]
    top, _, left, _ = pads
    xp = _padded_cnhw(x, pads, dtype)  # (C, N, Hp, Wp)
    # dy channel-first, (C, m, N*H_out*W_out): a free view when dy came from forward's layout.
    dyc = np.ascontiguousarray(dy.transpose(1, 0, 2, 3), dtype=dtype).reshape(C, m, N, *out)
    w = weight.reshape(C, m, KH * KW)  # (C, m, KH*KW)
    dW = np.empty((C, m, KH * KW), dtype)  # (C, m, KH*KW)
    db = dyc.sum(axis=(2, 3, 4)).reshape(C_out)  # (C_out,): bias is added at every position
    dxp = np.zeros(xp.shape, dtype) if need_dx else None  # (C, N, Hp, Wp)
    x_taps = _taps(xp, (KH, KW), stride, dilation, out)
    dx_taps = _taps(dxp, (KH, KW), stride, dilation, out) if dxp is not None else None

    def work(c0: int, c1: int) -> None:
        # Weight sharing: dW of a tap is the sum over every position of dy times the tapped input.
        # einsum's own loop, not BLAS: a (c, N*H_out*W_out) x (N*H_out*W_out, m) product per
        # block woke OpenBLAS's threads for each call, 20x slower here (1.0 s vs 0.04 s in all).
        for t, (_, _, tap) in enumerate(x_taps):
            dW[c0:c1, :, t] = np.einsum("cnhw,cqnhw->cq", tap[c0:c1], dyc[c0:c1])  # (c, m)
        if dx_taps is None:
            return
        # Each tap's shifted window of dx receives dy times that tap's weight (summed over q).
        tmp = np.empty((c1 - c0, N, *out), dtype)  # (c, N, H_out, W_out)
        for t, (_, _, view) in enumerate(dx_taps):
            if m == 1:
                np.multiply(dyc[c0:c1, 0], w[c0:c1, 0, t, None, None, None], out=tmp)
            else:
                np.einsum("cqnhw,cq->cnhw", dyc[c0:c1], w[c0:c1, :, t], out=tmp)
            view[c0:c1] += tmp

    per_channel = xp[0].nbytes + 2 * dyc[0].nbytes  # input, dx and dy of one channel
    _blocks(work, C, dyc.size * KH * KW, _channel_block(per_channel))
    dx = None
    if dxp is not None:
        dx = dxp[:, :, top : top + H, left : left + W].transpose(1, 0, 2, 3)  # (N, C, H, W), a view
    return dx, dW.reshape(weight.shape), db
