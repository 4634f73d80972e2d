"""Batch normalization kernels (Ioffe & Szegedy, 2015, arXiv:1502.03167): stateless, NumPy only.

Per channel c (axis 1), over every other axis (batch, and length or height/width):

    x_hat = (x - mean) / sqrt(var + eps)
    y     = weight * x_hat + bias

Two versions that compute the same numbers (a test ties them together):

- the textbook kernels ``batchnorm_forward`` / ``batchnorm_backward`` (x_hat materialized,
  one formula per line), to read first;
- the fast row kernels ``forward_rows`` / ``backward_rows`` that ``layers.batchnorm`` runs:
  they work on a (C, N*H*W) matrix (``channels_first``, a free view of a conv's
  channel-first output), one range of channels per call (``utils.split_channels`` runs the
  ranges on all cores), and keep ``x - mean`` instead of x_hat: fewer passes over the data.

The layer (``cnnlab.layers.batchnorm``) holds the parameters, the running statistics and
the cache, and calls these.
"""

from __future__ import annotations

import numpy as np


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a (C,) vector to broadcast over axis 1 of an ``ndim``-dim array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))  # (1, C, 1, ...)


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    """Every axis but the channel axis 1: (0,), (0, 2) or (0, 2, 3)."""
    return (0, *range(2, ndim))


def channels_first(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, ...) as a (C, N*...) matrix: a view when the memory is channel-first.

    Conv2D returns NCHW views of (C, N, H, W) memory, so after a conv this costs nothing
    and every per-channel reduction below runs over one contiguous row. Other layouts
    are copied once.
    """
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)  # (C, N*H*W)


def from_channels_first(x2: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``channels_first``: the (C, N*...) matrix as an (N, C, ...) view."""
    return np.moveaxis(x2.reshape((shape[1], shape[0], *shape[2:])), 0, 1)  # (N, C, ...)


def batchnorm_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalize ``x`` per channel with the given statistics, then scale and shift.

    Returns ``(y, x_hat, inv_std)``: the output and what the backward kernel needs.
    """
    inv_std = 1.0 / np.sqrt(var + eps)  # (C,)
    x_hat = (x - _per_channel(mean, x.ndim)) * _per_channel(inv_std, x.ndim)  # like x
    y = _per_channel(weight, x.ndim) * x_hat + _per_channel(bias, x.ndim)  # like x
    return y, x_hat, inv_std


def batchnorm_backward(
    dy: np.ndarray, x_hat: np.ndarray, weight: np.ndarray, inv_std: np.ndarray, batch_stats: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx, dweight, dbias)`` of ``batchnorm_forward``.

    ``batch_stats=True`` when mean and var were computed from ``x`` itself (training
    mode), so they carry gradient too; False when they were constants (eval mode).
    """
    axes = _reduce_axes(dy.ndim)
    m = dy.size // dy.shape[1]  # elements per channel
    dbias = dy.sum(axis=axes)  # (C,)
    dweight = (dy * x_hat).sum(axis=axes)  # (C,)
    scale = _per_channel(weight * inv_std, dy.ndim)  # (1, C, 1, ...)
    if not batch_stats:
        return scale * dy, dweight, dbias
    # Compact form. With g = dL/dx_hat = weight * dy and s = inv_std, the chain rule through
    # x_hat = (x - mean) * s, dmean/dx_i = 1/m and dvar/dx_i = 2 (x_i - mean) / m gives
    #   dx = s/m * (m * g - sum(g) - x_hat * sum(g * x_hat))
    # and sum(g) = weight * dbias, sum(g * x_hat) = weight * dweight.
    dx = scale / m * (m * dy - _per_channel(dbias, dy.ndim) - x_hat * _per_channel(dweight, dy.ndim))
    return dx, dweight, dbias


#: Bytes of one channel block: the rows a kernel below runs all its passes over before it
#: moves on, so that only the first read and the last write of each row go to main memory.
BLOCK_BYTES = 2**18


def row_blocks(c0: int, c1: int, row_bytes: int) -> list[tuple[int, int]]:
    """Channel ranges covering c0:c1, each of at most ``BLOCK_BYTES`` (at least one row).

    Example:
        >>> row_blocks(0, 5, 100_000)
        [(0, 2), (2, 4), (4, 5)]
    """
    step = max(1, BLOCK_BYTES // max(row_bytes, 1))
    return [(b0, min(c1, b0 + step)) for b0 in range(c0, c1, step)]


def forward_rows(
    x2: np.ndarray,
    centered: np.ndarray,
    y2: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    inv_std: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    eps: float,
    batch_stats: bool,
    relu: bool,
    c0: int,
    c1: int,
) -> None:
    """Forward of channels c0:c1 of the (C, M) matrix ``x2``, written into the other arrays.

    With ``batch_stats`` the mean and the biased variance are computed (two passes, each a
    pairwise sum over one contiguous row: no E[x^2] - E[x]^2 cancellation) into ``mean``
    and ``var``; else those hold the running statistics. x_hat is never materialized:
    y = (x - mean) * (weight * inv_std) + bias, then max(y, 0) in place with ``relu``.
    The passes run block by block of rows (``row_blocks``), each block while it is in cache.
    """
    for b0, b1 in row_blocks(c0, c1, x2.shape[1] * y2.itemsize):
        rows = slice(b0, b1)
        if batch_stats:
            mean[rows] = x2[rows].mean(axis=1)
        cen = np.subtract(x2[rows], mean[rows, None], out=centered[rows])  # (c, M)
        y = y2[rows]  # (c, M)
        if batch_stats:
            var[rows] = np.multiply(cen, cen, out=y).mean(axis=1)  # the squares, in y's memory
        inv_std[rows] = 1.0 / np.sqrt(var[rows] + eps)
        np.multiply(cen, (weight[rows] * inv_std[rows])[:, None], out=y)
        y += bias[rows, None]
        if relu:  # the fused BatchNorm -> ReLU (cnnlab.layers.fuse): while these rows are in cache
            np.maximum(y, 0, out=y)


def backward_rows(
    dy2: np.ndarray,
    centered: np.ndarray,
    inv_std: np.ndarray,
    weight: np.ndarray,
    dx2: np.ndarray,
    dweight: np.ndarray,
    dbias: np.ndarray,
    batch_stats: bool,
    relu: np.ndarray | None,
    c0: int,
    c1: int,
) -> None:
    """Backward of channels c0:c1: fills those rows of ``dx2``, ``dweight``, ``dbias``.

    The same algebra as ``batchnorm_backward`` with x_hat = centered * inv_std:
    dx = scale * (dy - dbias/m - x_hat * dweight/m), scale = weight * inv_std.
    With ``relu`` (the fused BatchNorm -> ReLU's output y, (C, M)), ReLU's rule comes first:
    the gradient reaching the BatchNorm is dy where y > 0, else 0. The passes run block by
    block of rows (``row_blocks``), with one block of scratch.
    """
    M = dy2.shape[1]
    blocks = row_blocks(c0, c1, M * dx2.itemsize)
    if not blocks:
        return
    rows_max = max(b1 - b0 for b0, b1 in blocks)
    scale_dtype = np.result_type(weight.dtype, inv_std.dtype)
    scratch = np.empty((rows_max, M), np.result_type(dy2.dtype, scale_dtype))  # (c, M): dy * scale
    masked = np.empty((rows_max, M), dy2.dtype) if relu is not None else None
    for b0, b1 in blocks:
        rows = slice(b0, b1)
        dy, cen, dx, s = dy2[rows], centered[rows], dx2[rows], inv_std[rows]
        if relu is not None and masked is not None:
            dy = np.multiply(dy, relu[rows] > 0, out=masked[: b1 - b0])  # ReLU's backward: 0 where y = 0
        m = dy.shape[1]
        dbias[rows] = dy.sum(axis=1)
        dweight[rows] = np.multiply(dy, cen, out=dx).sum(axis=1) * s  # sum(dy * x_hat); dx is scratch
        scale = weight[rows] * s
        if batch_stats:
            np.multiply(cen, (-scale * s * dweight[rows] / m)[:, None], out=dx)
            dx += (-scale * dbias[rows] / m)[:, None]
            dx += np.multiply(dy, scale[:, None], out=scratch[: b1 - b0])
        else:
            np.multiply(dy, scale[:, None], out=dx)  # the statistics were constants
