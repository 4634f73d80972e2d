"""Batch normalization (Ioffe & Szegedy, 2015, arXiv:1502.03167), PyTorch semantics.

Per channel c (axis 1), over every other axis (batch, and length or height/width):

    x_hat = (x - mean) / sqrt(var + eps)
    y     = weight * x_hat + bias

Training mode normalizes with the batch mean and the BIASED batch variance, and updates
the running statistics with the UNBIASED variance (as PyTorch does):

    running = (1 - momentum) * running + momentum * batch_statistic

Eval mode normalizes with the running statistics. BatchNorm1D and BatchNorm2D differ only
in the input rank they accept: both call the same two kernels below.
"""

from __future__ import annotations

import numbers

import numpy as np

from cnnlab.errors import arg_error, shape_error
from cnnlab.layers.base import DEFAULT_DTYPE, Layer


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a (C,) vector to broadcast over axis 1 of an ``ndim``-dim array."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))  # (1, C, 1, ...)


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    """Every axis but the channel axis 1: (0,), (0, 2) or (0, 2, 3)."""
    return (0, *range(2, ndim))


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
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise arg_error(self.name, "eps", "a positive float", eps)
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

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=self._ndims)
        self._check_shape(x.shape)
        axes = _reduce_axes(x.ndim)
        weight, bias = self.params["weight"], self.params["bias"]
        if self.training:
            m = x.size // x.shape[1]  # elements per channel
            if m < 2:
                raise shape_error(
                    self.name, "input in training mode", "more than 1 value per channel", x.shape
                )
            mean = x.mean(axis=axes)  # (C,)
            var = x.var(axis=axes)  # (C,) biased: normalizes the batch
            # Running statistics use the unbiased variance (PyTorch semantics).
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += self.momentum * var * (m / (m - 1))
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        y, x_hat, inv_std = batchnorm_forward(x, weight, bias, mean, var, self.eps)
        self._cache = (x_hat, inv_std, self.training)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_hat, inv_std, batch_stats = self._cached()
        dx, dweight, dbias = batchnorm_backward(dy, x_hat, self.params["weight"], inv_std, batch_stats)
        self.grads["weight"] = dweight.astype(self.params["weight"].dtype, copy=False)
        self.grads["bias"] = dbias.astype(self.params["bias"].dtype, copy=False)
        return dx

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_shape(tuple(input_shape))
        return tuple(input_shape)


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
