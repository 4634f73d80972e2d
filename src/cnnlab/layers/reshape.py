"""Flatten: the bridge from convolutional feature maps to fully connected layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError
from cnnlab.layers.base import Layer, TorchSpec, unsupported_torch


class Flatten(Layer):
    """Flatten every axis after the batch axis into one, like ``torch.nn.Flatten()``.

    The order is C-order (channel, then row, then column), the same as PyTorch, so the
    weights of a following Dense layer can be copied across frameworks unchanged.

    Shape:
        - Input: (N, C, H, W) (or any (N, ...)).
        - Output: (N, C*H*W).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.reshape import Flatten
        >>> Flatten().forward(np.zeros((2, 64, 7, 7))).shape
        (2, 3136)
        >>> Flatten().output_shape((1, 64, 7, 7))
        (1, 3136)
    """

    torch = TorchSpec("torch.nn.Flatten", onnx_ops=("Flatten",))

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.start_dim != 1 or module.end_dim != -1:
            raise unsupported_torch(module, "only start_dim=1, end_dim=-1 (flatten all but the batch axis)")
        return {}

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise ShapeError(
                f"Flatten: input must have a batch axis and at least one more, shape (N, C, H, W) "
                f"or (N, ...). Received: shape {shape}"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_shape(x.shape)
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)  # (N, C*H*W)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._cached())  # (N, C, H, W)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Free: a reshape moves no numbers."""
        return 0

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_shape(tuple(input_shape))
        return (input_shape[0], math.prod(input_shape[1:]))
