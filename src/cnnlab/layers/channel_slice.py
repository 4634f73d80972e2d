"""ChannelSlice: channels ``start`` to ``stop`` of the input (ShuffleNetV2's channel split)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int
from cnnlab.layers.base import Layer, TorchSpec


class ChannelSlice(Layer):
    """Keeps channels ``start`` .. ``stop - 1``, like ``x[:, start:stop]`` in PyTorch.

    ShuffleNetV2 (Ma et al., 2018, arXiv:1807.11164) splits the channels of a block's
    input in two halves (``x.chunk(2, dim=1)``): one half passes unchanged, the other goes
    through the convolutions. In a ``Graph`` the split is two ChannelSlice nodes reading
    the same tensor. The gradient is ``dy`` in the kept channels and 0 elsewhere (the
    Graph adds the two halves' gradients where the input fans out).

    Args:
        start: the first channel kept (>= 0).
        stop: one past the last channel kept (> start).

    Shape:
        - Input: (N, C, ...) with C >= stop.
        - Output: (N, stop - start, ...)

    Example:
        >>> import numpy as np
        >>> ChannelSlice(1, 3).forward(np.arange(4.0).reshape(1, 4, 1, 1)).ravel().tolist()
        [1.0, 2.0]
    """

    # No ONNX operator claimed: torch exports a slice as Slice with constant inputs.
    torch = TorchSpec("cnnlab.interop.torch_modules.ChannelSlice")

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        check_int("ChannelSlice", "start", start, minimum=0)
        check_int("ChannelSlice", "stop", stop)
        if stop <= start:
            raise arg_error("ChannelSlice", "stop", f"an int greater than start={start}", stop)
        self.start, self.stop = int(start), int(stop)

    def torch_args(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"start": module.start, "stop": module.stop}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) < 2 or shape[1] < self.stop:
            raise ShapeError(
                f"ChannelSlice: input must have shape (N, C, ...) with C >= stop={self.stop}. "
                f"Received: shape {shape}"
            )
        return (shape[0], self.stop - self.start, *shape[2:])

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """A copy, no arithmetic."""
        return 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output_shape(x.shape)
        self._cache = x.shape
        return x[:, self.start : self.stop].copy(order="K")  # (N, stop - start, ...)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        expected = self.output_shape(x_shape)
        if dy.shape != expected:
            raise ShapeError(f"ChannelSlice: dy must have shape {expected}. Received: shape {dy.shape}")
        dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, ...): the dropped channels get 0
        dx[:, self.start : self.stop] = dy
        return dx
