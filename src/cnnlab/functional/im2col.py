"""im2col and its reverse: turn convolution into one matrix product.

A convolution takes, at every output location, the dot product of the window under the
filter with the filter (the lecture's "sum of the element-wise product"). If every window
is unrolled into one column of a matrix ("image to columns"), all those dot products
become a single matrix product with the filters unrolled into rows:

    y (C_out, N*H_out*W_out) = weight (C_out, C_in*KH*KW) @ cols (C_in*KH*KW, N*H_out*W_out)

Layout. cnnlab keeps the padded input and the columns channel-first, ``(C, N, H, W)``
("CNHW"), so the product above lands in ``(C_out, N, H_out, W_out)`` order and the layer
returns a transposed *view* as NCHW: no transpose copy after the GEMM.

The column matrix is built with ONE copy out of a ``sliding_window_view`` of the padded
input (no Python loop over positions). Its reverse for the input gradient, ``col2im_into``,
adds each kernel offset's block back into the UNPADDED input gradient with strided slices,
clipped where the offset read zero padding: KH*KW vectorized adds, never ``np.add.at``
(which is unbuffered and about 10x slower).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def out_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    """floor((size + pad_total - dilation*(kernel-1) - 1) / stride) + 1 (may be <= 0).

    Example:
        >>> out_size(5, 2, 3, 2, 1)  # 5x5 input, padding 1 on both sides, 3x3, stride 2
        3
    """
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def pad_into(x: np.ndarray, xp: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Copy NCHW ``x`` into the interior of the CNHW buffer ``xp`` and return ``xp``.

    The border of ``xp`` must already be zero; it is never written here, so a buffer
    reused for inputs of the same shape keeps its zero border.
    """
    top, _, left, _ = pads
    H, W = x.shape[2:]
    # x.transpose(1, 0, 2, 3) is (C, N, H, W): the copy does the layout change for free.
    xp[:, :, top : top + H, left : left + W] = x.transpose(1, 0, 2, 3)
    return xp


def im2col(
    xp: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    cols: np.ndarray,
) -> np.ndarray:
    """Fill ``cols`` (C*KH*KW, N*H_out*W_out) with the windows of the padded CNHW ``xp``.

    Row ``(c, i, j)`` of ``cols`` holds input channel ``c`` at kernel offset ``(i, j)``
    for every (sample, output row, output column).

    Example:
        >>> xp = np.arange(9.0).reshape(1, 1, 3, 3)  # (C, N, H, W)
        >>> cols = np.empty((4, 4))
        >>> im2col(xp, (2, 2), (1, 1), (1, 1), cols)[:, 0]  # the top-left 2x2 window
        array([0., 1., 3., 4.])
    """
    C, N, Hp, Wp = xp.shape
    KH, KW = kernel
    SH, SW = stride
    DH, DW = dilation
    H_out = out_size(Hp, 0, KH, SH, DH)
    W_out = out_size(Wp, 0, KW, SW, DW)
    span_h, span_w = DH * (KH - 1) + 1, DW * (KW - 1) + 1  # the dilated (effective) kernel
    windows = sliding_window_view(xp, (span_h, span_w), axis=(2, 3))  # (C, N, Hp-span+1, .., span_h, span_w)
    windows = windows[:, :, ::SH, ::SW, ::DH, ::DW]  # (C, N, H_out, W_out, KH, KW)
    # One strided copy: (C, KH, KW, N, H_out, W_out) is the row/column order of cols.
    np.copyto(cols.reshape(C, KH, KW, N, H_out, W_out), windows.transpose(0, 4, 5, 1, 2, 3), casting="unsafe")
    return cols


def _clip(offset: int, step: int, n_out: int, size: int) -> tuple[int, int]:
    """Output indices [lo, hi) whose input index ``offset + step*r`` lies in [0, size)."""
    lo = 0 if offset >= 0 else (-offset + step - 1) // step  # ceil(-offset / step)
    hi = min(n_out, (size - 1 - offset) // step + 1) if offset < size else 0
    return lo, max(lo, hi)


def col2im_into(
    dx: np.ndarray,
    dcols6: np.ndarray,
    pads: tuple[int, int, int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Sum the kernel-offset blocks of ``dcols6`` back into the UNPADDED CNHW ``dx`` (overwritten).

    ``dcols6`` is dL/dcols as (C, KH, KW, N, H_out, W_out). Offset (i, j) of output (r, s)
    read input pixel (i*DH - top + SH*r, j*DW - left + SW*s); cells that fell in the zero
    padding get no gradient, so each block is clipped to the input instead of adding into
    a padded buffer and cropping. When one offset covers every input pixel (stride 1,
    output as large as the input, e.g. 3x3 with padding 1) it is copied first, which
    replaces the zero fill and one add; ``dx`` is then never zero-filled.

    Example:
        >>> d6 = np.ones((1, 2, 2, 1, 2, 2))  # 2x2 kernel over a 3x3 input, no padding
        >>> col2im_into(np.empty((1, 1, 3, 3)), d6, (0, 0, 0, 0), (1, 1), (1, 1))[0, 0]
        array([[1., 2., 1.],
               [2., 4., 2.],
               [1., 2., 1.]])
    """
    _, KH, KW, _, H_out, W_out = dcols6.shape  # (C, KH, KW, N, H_out, W_out)
    H, W = dx.shape[2:]
    top, _, left, _ = pads
    (SH, SW), (DH, DW) = stride, dilation
    pieces = []
    for i in range(KH):
        r0, r1 = _clip(i * DH - top, SH, H_out, H)
        for j in range(KW):
            c0, c1 = _clip(j * DW - left, SW, W_out, W)
            if r1 > r0 and c1 > c0:
                rows = slice(i * DH - top + SH * r0, i * DH - top + SH * (r1 - 1) + 1, SH)
                cols = slice(j * DW - left + SW * c0, j * DW - left + SW * (c1 - 1) + 1, SW)
                full = r1 - r0 == H and c1 - c0 == W
                pieces.append((not full, rows, cols, dcols6[:, i, j, :, r0:r1, c0:c1]))
    pieces.sort(key=lambda piece: piece[0])  # a full-cover block (if any) first
    if not pieces or pieces[0][0]:
        dx[...] = 0
        first = False
    else:
        first = True
    for k, (_, rows, cols, block) in enumerate(pieces):
        if k == 0 and first:
            np.copyto(dx, block)
        else:
            dx[:, :, rows, cols] += block
    return dx
