"""ChannelShuffle: mix the channels of grouped convolutions' groups (ShuffleNet)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, check_int
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.shuffle import channel_shuffle, channel_shuffle_backward
from cnnlab.layers.base import Layer, TorchSpec


class ChannelShuffle(Layer):
    """Reorders channels so each group of the next grouped convolution sees every group.

    A grouped convolution (``Conv2D(groups=g)``) only mixes channels within a group; after
    two of them, group 0's output still depends on group 0's input only. ShuffleNet (Zhang
    et al., 2018, arXiv:1707.01083) interleaves the groups in between: the C = g * m channels
    are read as a (g, m) grid and written out column by column, so output channel
    ``i * g + j`` is input channel ``j * m + i``. No parameters; the gradient goes back
    through the inverse permutation (``cnnlab.functional.shuffle``).

    Args:
        groups: the number of groups g; the channels must divide by it.

    Shape:
        - Input: (N, C, H, W) (or (N, C, ...)), C divisible by ``groups``. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.shuffle import ChannelShuffle
        >>> ChannelShuffle(2).forward(np.arange(6.0).reshape(1, 6, 1, 1)).ravel().tolist()
        [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """

    # No ONNX operator: torch exports it as Reshape + Transpose + Reshape.
    torch = TorchSpec("torch.nn.ChannelShuffle")

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = check_int("ChannelShuffle", "groups", groups)

    def torch_args(self) -> dict[str, Any]:
        return {"groups": self.groups}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"groups": module.groups}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if len(shape) < 3 or shape[1] % self.groups:
            raise ShapeError(
                f"ChannelShuffle: input must have shape (N, C, H, W) with C divisible by "
                f"groups={self.groups}. Received: shape {shape}"
            )
        return shape

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """A copy, no arithmetic."""
        return 0

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output_shape(x.shape)
        self._cache = x.shape
        return channel_shuffle(x, self.groups)  # (N, C, H, W)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        if dy.shape != x_shape:
            raise ShapeError(f"ChannelShuffle: dy must have shape {x_shape}. Received: shape {dy.shape}")
        return channel_shuffle_backward(dy, self.groups)  # (N, C, H, W)
