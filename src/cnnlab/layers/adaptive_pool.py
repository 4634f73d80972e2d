"""AdaptiveAvgPool2D: average pooling to a fixed output size, whatever the input size."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, int_pair
from cnnlab.functional.adaptive_pool import adaptive_avg_pool2d, adaptive_avg_pool2d_backward
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec, single, unsupported_torch


class AdaptiveAvgPool2D(Layer):
    """Average pooling whose windows adapt so that the output is ``output_size``, like PyTorch's.

    AlexNet and VGG (torchvision) pool their last feature maps to 6x6 and 7x7 this way, so
    the classifier's size does not depend on the input's: at 224x224 it changes nothing,
    on other sizes it averages (or repeats) cells. Output cell i of an axis of length H
    averages input cells floor(i*H/OH) .. ceil((i+1)*H/OH) - 1 (``cnnlab.functional.adaptive_pool``).
    ``GlobalAvgPool2D`` is the 1x1 case without the two trailing axes.

    Args:
        output_size: (OH, OW), or an int for both.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, OH, OW)

    Example:
        >>> import numpy as np
        >>> pool = AdaptiveAvgPool2D(2)
        >>> pool.forward(np.arange(9.0).reshape(1, 1, 3, 3)).tolist()  # windows rows/cols 0-1 and 1-2
        [[[[2.0, 3.0], [5.0, 6.0]]]]
    """

    # No ONNX operator of its own: torch exports it as AveragePool only when sizes divide.
    torch = TorchSpec("torch.nn.AdaptiveAvgPool2d")

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self._out = int_pair("AdaptiveAvgPool2D", "output_size", output_size)
        self.output_size = tuple(output_size) if isinstance(output_size, list) else output_size

    def torch_args(self) -> dict[str, Any]:
        return {"output_size": self._out}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        size = module.output_size
        if size is None or (isinstance(size, (tuple, list)) and None in size):
            raise unsupported_torch(module, "an output_size of None (keep the input's size) is not supported")
        return {"output_size": single(size)}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 4:
            raise ShapeError(
                f"AdaptiveAvgPool2D: input must have shape (N, C, H, W). Received: shape {tuple(input_shape)}"
            )
        return (input_shape[0], input_shape[1], *self._out)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """The two matrix products: 2*C*(OH*H*W + OH*W*OW)."""
        _, C, H, W = input_shape
        OH, OW = self._out
        return 2 * C * (OH * H * W + OH * W * OW)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(4,))
        self._cache = x.shape
        return adaptive_avg_pool2d(x, self._out)  # (N, C, OH, OW)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        expected = (*x_shape[:2], *self._out)
        if dy.shape != expected:
            raise ShapeError(f"AdaptiveAvgPool2D: dy must have shape {expected}. Received: shape {dy.shape}")
        return adaptive_avg_pool2d_backward(dy, x_shape)  # (N, C, H, W)
