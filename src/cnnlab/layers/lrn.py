"""LocalResponseNorm: each activation divided by the energy of its neighbour channels (AlexNet)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, check_int, check_real
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.lrn import local_response_norm, local_response_norm_backward
from cnnlab.layers.base import Layer, TorchSpec


class LocalResponseNorm(Layer):
    """Local response normalization across channels (Krizhevsky et al., 2012; GoogLeNet).

    Each value is divided by ``(k + alpha/size * sum of squares of the values at the same
    position in the neighbouring channels)^beta``: a strongly active channel damps its
    neighbours ("lateral inhibition"). BatchNorm has replaced it in later networks. The
    definition is PyTorch's ``nn.LocalResponseNorm`` (``cnnlab.functional.lrn`` writes it out
    with its gradient); for odd ``size`` it is also ONNX's ``LRN``.

    Args:
        size: channels in the window: c - size//2 ... c + (size-1)//2 (missing channels
            at the edges count as 0; the divisor stays ``size``).
        alpha: scale of the sum of squares.
        beta: exponent.
        k: additive constant (keeps the divisor away from 0).

    Shape:
        - Input: (N, C, H, W) (or (N, C, ...), at least 3 axes). Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.lrn import LocalResponseNorm
        >>> lrn = LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)  # AlexNet's values
        >>> lrn
        LocalResponseNorm(5, k=2.0)
        >>> lrn.forward(np.ones((2, 8, 3, 3))).shape
        (2, 8, 3, 3)
    """

    torch = TorchSpec("torch.nn.LocalResponseNorm", onnx_ops=("LRN",))

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = check_int("LocalResponseNorm", "size", size)
        self.alpha = check_real("LocalResponseNorm", "alpha", alpha)
        self.beta = check_real("LocalResponseNorm", "beta", beta)
        self.k = check_real("LocalResponseNorm", "k", k)

    def torch_args(self) -> dict[str, Any]:
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"size": module.size, "alpha": module.alpha, "beta": module.beta, "k": module.k}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) < 3:
            raise ShapeError(
                f"LocalResponseNorm: input must have shape (N, C, H, W) (at least 3 axes). "
                f"Received: shape {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per value: a square, ``size`` adds of the window, scale, add, power and product."""
        return math.prod(input_shape[1:]) * (self.size + 5)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output_shape(x.shape)
        y, d = local_response_norm(x, self.size, self.alpha, self.beta, self.k)  # (N, C, H, W)
        self._cache = (x, d)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x, d = self._cached()
        return local_response_norm_backward(dy, x, d, self.size, self.alpha, self.beta)  # (N, C, H, W)
