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
input (no Python loop over positions). Its reverse for the input gradient, ``col2im_add``,
adds a per-kernel-offset block back into a padded buffer with strided slices: KH*KW
vectorized adds, never ``np.add.at`` (which is unbuffered and about 10x slower).
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


def col2im_add(
    dxp: np.ndarray,
    block: np.ndarray,
    offset: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> None:
    """Add ``block`` (C, N, H_out, W_out) into the CNHW buffer ``dxp`` at kernel offset (i, j).

    Kernel offset (i, j) touched input pixel (i*DH + SH*r, j*DW + SW*s) for output (r, s),
    so its gradient goes back there: one strided slice, one vectorized add.
    """
    i, j = offset
    SH, SW = stride
    DH, DW = dilation
    _, _, H_out, W_out = block.shape
    rows = slice(i * DH, i * DH + SH * (H_out - 1) + 1, SH)
    columns = slice(j * DW, j * DW + SW * (W_out - 1) + 1, SW)
    dxp[:, :, rows, columns] += block
