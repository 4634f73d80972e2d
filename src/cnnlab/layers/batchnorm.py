"""Batch normalization layers (Ioffe & Szegedy, 2015, arXiv:1502.03167), PyTorch semantics.

Per channel c (axis 1), over every other axis (batch, and length or height/width):

    x_hat = (x - mean) / sqrt(var + eps)
    y     = weight * x_hat + bias

Training mode normalizes with the batch mean and the BIASED batch variance, and updates
the running statistics with the UNBIASED variance (as PyTorch does):

    running = (1 - momentum) * running + momentum * batch_statistic

Eval mode normalizes with the running statistics. BatchNorm1D and BatchNorm2D differ only
in the input rank they accept. The math lives in ``cnnlab.functional.batchnorm``: the layers
run its fast row kernels on a (C, N*H*W) matrix (a free view of a conv's channel-first
output); the textbook kernels ``batchnorm_forward``/``batchnorm_backward`` there compute
the same in the plain form. The layers hold the parameters, the running statistics and the
forward cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import check_int, check_real, shape_error
from cnnlab.functional.batchnorm import backward_rows, channels_first, forward_rows, from_channels_first
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec, config_int, unsupported_torch
from cnnlab.utils import DEFAULT_DTYPE, split_channels


class _BatchNorm(Layer):
    """Shared code of BatchNorm1D and BatchNorm2D (not registered: name starts with _)."""

    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        check_int(self.name, "num_features", num_features)
        check_real(self.name, "eps", eps, "a positive finite float", lambda v: 0 < v < math.inf)
        check_real(self.name, "momentum", momentum, "a float in [0, 1]", lambda v: 0 <= v <= 1)
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

    def torch_args(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if not (module.affine and module.track_running_stats) or module.momentum is None:
            raise unsupported_torch(
                module, "needs affine=True, track_running_stats=True and a float momentum"
            )
        return {"num_features": module.num_features, "eps": module.eps, "momentum": module.momentum}

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
        split_channels(lambda c0, c1: forward_rows(*stats, self.eps, self.training, relu, c0, c1), C, x2.size)
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
        relu = relu_y  # the fused ReLU's output: its rule comes first
        parts = (dy2, centered, inv_std, weight, dx2, dweight, dbias)
        split_channels(lambda c0, c1: backward_rows(*parts, batch_stats, relu, c0, c1), C, dy2.size)
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
    torch = TorchSpec("torch.nn.BatchNorm1d", onnx_ops=("BatchNormalization",))


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
    torch = TorchSpec("torch.nn.BatchNorm2d", onnx_ops=("BatchNormalization",))
