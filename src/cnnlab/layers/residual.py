"""Residual connection (He et al., 2016, arXiv:1512.03385): y = block(x) + shortcut(x)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error
from cnnlab.functional.elementwise import add
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec


class Residual(Layer):
    """Adds a block's output to its input (or to a shortcut layer's output).

    The sum passes the upstream gradient to both branches unchanged, so
    dL/dx = block.backward(dy) + shortcut.backward(dy) (or + dy for the identity): the
    identity path lets gradients reach early layers of deep networks.

    Args:
        block: the residual branch, e.g. ``Sequential(Conv2D, BatchNorm2D, ReLU, ...)``.
        shortcut: a layer applied to ``x`` on the skip path (e.g. a 1x1 ``Conv2D`` when
            the block changes the channel count or stride); None for the identity.

    Shape:
        - Input: whatever ``block`` takes.
        - Output: ``block``'s output shape, which must equal ``shortcut``'s (or the
          input's, for the identity).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.batchnorm import BatchNorm2D
        >>> from cnnlab.layers.residual import Residual
        >>> from cnnlab.layers.sequential import Sequential
        >>> res = Residual(Sequential(BatchNorm2D(3)))
        >>> res.forward(np.ones((2, 3, 4, 4), dtype=np.float32)).shape
        (2, 3, 4, 4)
        >>> list(res.state_dict())[:2]
        ['block.0.weight', 'block.0.bias']
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.Residual", onnx_ops=("Add",))

    def __init__(self, block: Layer, shortcut: Layer | None = None) -> None:
        super().__init__()
        if not isinstance(block, Layer):
            raise arg_error("Residual", "block", "a cnnlab Layer", block)
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise arg_error("Residual", "shortcut", "a cnnlab Layer or None (identity)", shortcut)
        self.block = block
        self.shortcut = shortcut

    def torch_args(self) -> dict[str, Any]:
        return {"block": self.block, "shortcut": self.shortcut}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        shortcut = module.shortcut  # nn.Identity (named, not imported: torch is optional) is None
        identity = shortcut is None or type(shortcut).__name__ == "Identity"
        return {"block": module.block, "shortcut": None if identity else shortcut}

    def children(self) -> dict[str, Layer]:
        if self.shortcut is None:
            return {"block": self.block}
        return {"block": self.block, "shortcut": self.shortcut}

    def _mismatch(self, block_shape: tuple[int, ...], skip_shape: tuple[int, ...]) -> ShapeError:
        skip = "shortcut output" if self.shortcut is not None else "input (identity shortcut)"
        return ShapeError(
            f"Residual: block output and {skip} must have the same shape to be added. "
            f"Received: block output shape {tuple(block_shape)}, {skip} shape {tuple(skip_shape)}. "
            "Use a shortcut layer that maps the input to the block's output shape, e.g. "
            "Conv2D(in_channels, out_channels, kernel_size=1, stride=block_stride)"
        )

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self.block.forward(x)
        skip = x if self.shortcut is None else self.shortcut.forward(x)
        if out.shape != skip.shape:
            raise self._mismatch(out.shape, skip.shape)
        self._cache = True  # the sub-layers cache what backward needs
        return add(out, skip)  # out + skip, on all cores

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        self._cached()
        # The sum copies dy to both branches; their input gradients add up.
        dx = self.block.backward(dy)
        dx_skip = dy if self.shortcut is None else self.shortcut.backward(dy)
        return add(dx, dx_skip)  # dx + dx_skip, on all cores

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self.block.output_shape(input_shape)
        skip = tuple(input_shape) if self.shortcut is None else self.shortcut.output_shape(input_shape)
        if tuple(out) != tuple(skip):
            raise self._mismatch(out, skip)
        return tuple(out)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Both branches, plus one add per output element."""
        total = self.block.flops(input_shape) + math.prod(self.output_shape(input_shape)[1:])
        return total + (0 if self.shortcut is None else self.shortcut.flops(input_shape))

    def get_config(self) -> dict[str, Any]:
        return {"block": self.block, "shortcut": self.shortcut}

    def __repr__(self) -> str:
        lines = [f"  ({key}): {layer!r}".replace("\n", "\n  ") for key, layer in self.children().items()]
        return "Residual(\n" + "\n".join(lines) + "\n)"
