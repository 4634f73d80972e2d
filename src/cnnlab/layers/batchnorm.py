"""Batch normalization (Ioffe & Szegedy, 2015, arXiv:1502.03167), PyTorch semantics.

Per channel c (axis 1), over every other axis (batch, and length or height/width):

    x_hat = (x - mean) / sqrt(var + eps)
    y     = weight * x_hat + bias

Training mode normalizes with the batch mean and the BIASED batch variance, and updates
the running statistics with the UNBIASED variance (as PyTorch does):

    running = (1 - momentum) * running + momentum * batch_statistic

Eval mode normalizes with the running statistics. BatchNorm1D and BatchNorm2D differ only
in the input rank they accept. The layers compute on a (C, N*H*W) matrix (a free view of
a conv's channel-first output) and cache ``x - mean`` instead of ``x_hat``: fewer passes
over the data than the reference kernels ``batchnorm_forward``/``batchnorm_backward``
below, which compute the same in the textbook form.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from cnnlab.errors import arg_error, shape_error
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, config_int
from cnnlab.utils import DEFAULT_DTYPE, split_channels


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


def _forward_rows(
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
    """
    rows = slice(c0, c1)
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


def _backward_rows(
    dy2: np.ndarray,
    centered: np.ndarray,
    inv_std: np.ndarray,
    weight: np.ndarray,
    dx2: np.ndarray,
    dweight: np.ndarray,
    dbias: np.ndarray,
    batch_stats: bool,
    relu: tuple[np.ndarray, np.ndarray] | None,
    c0: int,
    c1: int,
) -> None:
    """Backward of channels c0:c1: fills those rows of ``dx2``, ``dweight``, ``dbias``.

    The same algebra as ``batchnorm_backward`` with x_hat = centered * inv_std:
    dx = scale * (dy - dbias/m - x_hat * dweight/m), scale = weight * inv_std.
    With ``relu = (y, masked)`` (the fused BatchNorm -> ReLU's output and a scratch matrix,
    both (C, M)), ReLU's rule comes first: the gradient reaching the BatchNorm is dy where
    y > 0, else 0 (written into ``masked``).
    """
    rows = slice(c0, c1)
    dy, cen, dx, s = dy2[rows], centered[rows], dx2[rows], inv_std[rows]
    if relu is not None:
        y, masked = relu
        dy = np.multiply(dy, y[rows] > 0, out=masked[rows])  # ReLU's backward: 0 where y = 0
    m = dy.shape[1]
    dbias[rows] = dy.sum(axis=1)
    dweight[rows] = np.multiply(dy, cen, out=dx).sum(axis=1) * s  # sum(dy * x_hat); dx is scratch
    scale = weight[rows] * s
    if batch_stats:
        np.multiply(cen, (-scale * s * dweight[rows] / m)[:, None], out=dx)
        dx += (-scale * dbias[rows] / m)[:, None]
        dx += dy * scale[:, None]
    else:
        np.multiply(dy, scale[:, None], out=dx)  # the statistics were constants


class _BatchNorm(Layer):
    """Shared code of BatchNorm1D and BatchNorm2D (not registered: name starts with _)."""

    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if (
            isinstance(num_features, bool)
            or not isinstance(num_features, numbers.Integral)
            or num_features < 1
        ):
            raise arg_error(self.name, "num_features", "a positive int", num_features)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
            raise arg_error(self.name, "eps", "a positive finite float", eps)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise arg_error(self.name, "momentum", "a float in [0, 1]", momentum)
        self.num_features: int = int(num_features)
        self.eps: float = float(eps)
        self.momentum: float = float(momentum)
        self.params = {
            "weight": np.ones(num_features, dtype=DEFAULT_DTYPE),
            "bias": np.zeros(num_features, dtype=DEFAULT_DTYPE),
        }
        self.buffers = {
            "running_mean": np.zeros(num_features, dtype=DEFAULT_DTYPE),
            "running_var": np.ones(num_features, dtype=DEFAULT_DTYPE),
        }

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) not in self._ndims:
            raise shape_error(self.name, "input", f"shape {self._layout}", tuple(shape))
        if shape[1] != self.num_features:
            raise shape_error(
                self.name,
                "input",
                f"{self.num_features} channels/features at axis 1 (num_features={self.num_features})",
                tuple(shape),
            )

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.forward_fused(x, relu=False)

    def forward_fused(self, x: np.ndarray, relu: bool) -> np.ndarray:
        """``forward``, followed by ReLU in the same pass when ``relu`` (for
        ``cnnlab.layers.fuse.BatchNormReLU``; its backward is ``backward_fused``)."""
        self._check_input(x, ndims=self._ndims)
        self._check_shape(x.shape)
        weight, bias = self.params["weight"], self.params["bias"]
        x2 = channels_first(x)  # (C, M): a view when x came from a conv (CNHW memory)
        C, m = x2.shape  # m: elements per channel
        if self.training and m < 2:
            raise shape_error(self.name, "input in training mode", "more than 1 value per channel", x.shape)
        dtype = np.result_type(x2.dtype, weight.dtype)
        centered = np.empty((C, m), dtype)  # (C, M): x - mean, what backward needs
        y2 = np.empty((C, m), dtype)  # (C, M)
        if self.training:
            mean, var = np.empty(C, dtype), np.empty(C, dtype)
        else:
            mean = self.buffers["running_mean"].astype(dtype)
            var = self.buffers["running_var"].astype(dtype)
        inv_std = np.empty(C, dtype)
        stats = (x2, centered, y2, mean, var, inv_std, weight, bias)
        split_channels(
            lambda c0, c1: _forward_rows(*stats, self.eps, self.training, relu, c0, c1), C, x2.size
        )
        if self.training:
            # Running statistics use the unbiased variance (PyTorch semantics).
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += self.momentum * var * (m / (m - 1))
        self._cache = (centered, inv_std, self.training, y2 if relu else None)
        return from_channels_first(y2, x.shape)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.backward_fused(dy)

    def backward_fused(self, dy: np.ndarray) -> np.ndarray:
        """``backward`` of the last forward, or of the last ``forward_fused(x, relu=True)``
        (ReLU's rule on ``dy`` first)."""
        centered, inv_std, batch_stats, relu_y = self._cached()
        weight = self.params["weight"]
        dy2 = channels_first(dy)  # (C, M)
        C = dy2.shape[0]
        dx2 = np.empty(centered.shape, centered.dtype)  # (C, M)
        dweight, dbias = np.empty(C, centered.dtype), np.empty(C, centered.dtype)
        relu = None if relu_y is None else (relu_y, np.empty(centered.shape, dy2.dtype))
        parts = (dy2, centered, inv_std, weight, dx2, dweight, dbias)
        split_channels(lambda c0, c1: _backward_rows(*parts, batch_stats, relu, c0, c1), C, dy2.size)
        self.grads["weight"] = dweight.astype(weight.dtype, copy=False)
        self.grads["bias"] = dbias.astype(self.params["bias"].dtype, copy=False)
        return from_channels_first(dx2, dy.shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_shape(tuple(input_shape))
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Two ops per element: scale and shift (the eval form)."""
        return 2 * math.prod(input_shape[1:])

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """``weight`` and ``bias``, one each per feature (the running statistics are buffers)."""
        return 2 * config_int(args.get("num_features"))


class BatchNorm1D(_BatchNorm):
    """Batch normalization of features: per feature over the batch (and length) axes.

    Args:
        num_features: F (or C for (N, C, L) input).
        eps: added to the variance before the square root.
        momentum: weight of the new batch statistic in the running average.

    Shape:
        - Input: (N, F) or (N, C, L)
        - Output: same as the input.
        Params ``weight`` (F,) = 1, ``bias`` (F,) = 0; buffers ``running_mean`` (F,) = 0,
        ``running_var`` (F,) = 1.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.batchnorm import BatchNorm1D
        >>> bn = BatchNorm1D(4)
        >>> y = bn.forward(np.random.default_rng(0).normal(3.0, 2.0, (16, 4)).astype(np.float32))
        >>> bool(np.allclose(y.mean(axis=0), 0, atol=1e-5)), bool(np.allclose(y.std(axis=0), 1, atol=1e-3))
        (True, True)
        >>> bn
        BatchNorm1D(4)
    """

    _ndims = (2, 3)
    _layout = "(N, F) or (N, C, L)"


class BatchNorm2D(_BatchNorm):
    """Batch normalization of feature maps: per channel over the batch, height and width.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance before the square root.
        momentum: weight of the new batch statistic in the running average.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, H, W), same as the input.
        Params ``weight`` (C,) = 1, ``bias`` (C,) = 0; buffers ``running_mean`` (C,) = 0,
        ``running_var`` (C,) = 1.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.batchnorm import BatchNorm2D
        >>> bn = BatchNorm2D(3, momentum=0.2)
        >>> y = bn.forward(np.random.default_rng(0).normal(5.0, 2.0, (8, 3, 4, 4)).astype(np.float32))
        >>> bool(np.allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5))
        True
        >>> list(bn.state_dict())
        ['weight', 'bias', 'running_mean', 'running_var']
        >>> bn
        BatchNorm2D(3, momentum=0.2)
    """

    _ndims = (4,)
    _layout = "(N, C, H, W)"
