"""Pooling layers: shrink each feature map by a max or an average over small windows.

Pooling has no parameters. It makes the representation smaller and a little invariant to
small shifts. The math lives in ``cnnlab.functional.pool``; these layers validate arguments,
explain sizes, and keep the forward cache. To read the math first, start with the plain
loops in ``cnnlab.functional.reference_pool`` (``max_pool2d_loops``, ``avg_pool2d_loops``
and their backward): the fast kernels compute the same numbers, and the tests hold them to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, int_pair
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.pool import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool2d,
    global_avg_pool2d_backward,
    max_pool2d,
    max_pool2d_2x2,
    max_pool2d_2x2_backward,
    max_pool2d_backward,
    pool_output_size,
    pool_pads,
)
from cnnlab.layers.base import Layer, TorchSpec, single, unsupported_torch

IntOrPair = int | tuple[int, int]
#: An int, (PH, PW), or ONNX's four pads (top, left, bottom, right).
Padding = int | tuple[int, int] | tuple[int, int, int, int]


def pool_axis(size: int, K: int, S: int, P: int, P_end: int, ceil_mode: bool) -> tuple[int, str]:
    """The output length along one axis and its formula with numbers (2-D and 1-D pooling).

    ``P`` pads before the input, ``P_end`` after it.

    Example:
        >>> pool_axis(28, 2, 2, 0, 0, False)
        (14, 'floor((28 - 2 + 2*0) / 2) + 1 = 14')
    """
    out = pool_output_size(size, K, S, P, ceil_mode, P_end)
    rounding = "ceil" if ceil_mode else "floor"
    pads = f"2*{P}" if P == P_end else f"{P} + {P_end}"
    text = f"{rounding}(({size} - {K} + {pads}) / {S}) + 1"
    if ceil_mode and out < -(-(size + P + P_end - K) // S) + 1:
        text += " - 1 (the last window would start in the right padding)"
    return out, f"{text} = {out}"


class _Pool2D(Layer):
    """Shared argument checks, shapes and formulas of MaxPool2D and AvgPool2D."""

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None, padding: Padding, ceil_mode: bool
    ) -> None:
        super().__init__()
        kernel = int_pair(self.name, "kernel_size", kernel_size)
        step = kernel if stride is None else int_pair(self.name, "stride", stride)
        pads = pool_pads(self.name, padding)  # (top, left, bottom, right)
        pad = (pads[0], pads[1])
        if pads[2:] == pad:
            # PyTorch's rule: a window may not be more than half padding.
            if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
                raise arg_error(
                    self.name,
                    "padding",
                    f"at most half of kernel_size={kernel_size!r} (as in PyTorch)",
                    padding,
                )
        elif any(p >= k for p, k in zip(pads, kernel * 2, strict=True)):
            # ONNX's: each pad smaller than the kernel, so every window holds an input cell.
            raise arg_error(
                self.name,
                "padding",
                f"pads (top, left, bottom, right) each smaller than kernel_size={kernel_size!r}",
                padding,
            )
        if not isinstance(ceil_mode, (bool, np.bool_)):
            raise arg_error(self.name, "ceil_mode", "True or False", ceil_mode)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = tuple(padding) if isinstance(padding, list) else padding  # lists from JSON
        self.ceil_mode = bool(ceil_mode)
        self._kernel, self._step, self._pad, self._pads = kernel, step, pad, pads

    @property
    def symmetric(self) -> bool:
        """True when bottom/right padding equal top/left (what PyTorch's pooling modules take)."""
        return self._pads[2:] == self._pad

    def _axis(self, axis: int, size: int) -> tuple[int, str]:
        """The output length and its formula text along axis 0 (H) or 1 (W)."""
        K, S, P, P_end = self._kernel[axis], self._step[axis], self._pads[axis], self._pads[axis + 2]
        return pool_axis(size, K, S, P, P_end, self.ceil_mode)

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        """The output-size formula with numbers, e.g. ``floor((28 - 2 + 2*0) / 2) + 1 = 14``."""
        _, h_text = self._axis(0, input_shape[-2])
        _, w_text = self._axis(1, input_shape[-1])
        return h_text if h_text == w_text else f"H: {h_text}, W: {w_text}"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self.name}: input must have shape (N, C, H, W). Received: shape {tuple(input_shape)}"
            )
        N, C, H, W = input_shape
        H_out, _ = self._axis(0, H)
        W_out, _ = self._axis(1, W)
        if H_out < 1 or W_out < 1:
            raise ShapeError(
                f"{self.name}: input of shape {tuple(input_shape)} is too small for kernel_size="
                f"{self.kernel_size!r}, stride={self.stride!r}, padding={self.padding!r}: output size "
                f"{self.formula(input_shape)}. Received: shape {tuple(input_shape)}"
            )
        return (N, C, H_out, W_out)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """One op per window element per output cell."""
        return math.prod(self.output_shape(input_shape)[1:]) * self._kernel[0] * self._kernel[1]

    def _geometry(self) -> dict[str, Any]:
        return {
            "kernel_size": self._kernel,
            "stride": self._step,
            "padding": self._pad if self.symmetric else self._pads,
            "ceil_mode": self.ceil_mode,
        }

    def torch_module(self) -> str | None:
        """nn.MaxPool2d / nn.AvgPool2d, or ``PaddedMaxPool2d`` / ``PaddedAvgPool2d`` for
        asymmetric pads (torch's pooling modules pad both sides alike)."""
        assert self.torch is not None  # both subclasses declare their entry
        return self.torch.module if self.symmetric else self.torch.also[0]

    def torch_args(self) -> dict[str, Any]:
        # stride None is torch's "the kernel size" too (the module then holds the kernel size).
        stride = None if self._step == self._kernel else self._step
        return {
            "kernel_size": self._kernel,
            "stride": stride,
            **({"padding": self._pad} if self.symmetric else {"pads": self._pads}),
            "ceil_mode": self.ceil_mode,
        }

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        kernel, stride = single(module.kernel_size), single(module.stride)
        padded = hasattr(module, "pads")  # PaddedMaxPool2d / PaddedAvgPool2d
        return {
            "kernel_size": kernel,
            "stride": None if stride == kernel else stride,
            "padding": tuple(module.pads) if padded else single(module.padding),
            "ceil_mode": module.ceil_mode,
        }


class MaxPool2D(_Pool2D):
    """Max pooling over 2D windows: each output cell is the largest value of its window.

    Padding counts as ``-inf`` (it never wins). The gradient flows only to the max of each
    window; on ties, to the first in row-major order, as in PyTorch. The readable version, one
    loop per output cell: ``cnnlab.functional.reference_pool.max_pool2d_loops`` (and
    ``max_pool2d_backward_loops``).

    Args:
        kernel_size: window size, an int or ``(KH, KW)``.
        stride: step between windows; None (default) means ``kernel_size``.
        padding: implicit ``-inf`` padding on each side, at most ``kernel_size // 2``; or
            ONNX's four pads ``(top, left, bottom, right)``, each smaller than the kernel.
        ceil_mode: round the output size up, keeping a last partial window.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, H_out, W_out) with
          H_out = floor((H + 2*padding - kernel_size) / stride) + 1 (ceil with ceil_mode, and a
          last window that would start in the right padding dropped); W_out likewise. With
          four pads, H + top + bottom replaces H + 2*padding.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling import MaxPool2D
        >>> pool = MaxPool2D(2)
        >>> pool.forward(np.zeros((8, 32, 28, 28), dtype=np.float32)).shape
        (8, 32, 14, 14)
        >>> pool.formula((8, 32, 28, 28))
        'floor((28 - 2 + 2*0) / 2) + 1 = 14'
        >>> MaxPool2D(3, stride=2, padding=(0, 0, 1, 1)).formula((1, 1, 8, 8))  # ONNX pads
        'floor((8 - 3 + 0 + 1) / 2) + 1 = 4'
    """

    torch = TorchSpec(
        "torch.nn.MaxPool2d", also=("cnnlab.interop.torch_modules.PaddedMaxPool2d",), onnx_ops=("MaxPool",)
    )

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if hasattr(module, "pads"):  # PaddedMaxPool2d: no dilation, no indices
            return super().from_torch_args(module)
        if single(module.dilation) != 1 or module.return_indices:
            raise unsupported_torch(module, "dilation and return_indices are not supported")
        return super().from_torch_args(module)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(4,))
        self.output_shape(x.shape)  # the clear error for inputs smaller than a window
        if self.is_2x2(x.shape):
            # The common 2x2 case: two pairwise max steps and their masks (functional/pool.py).
            y, masks = max_pool2d_2x2(x)  # (N, C, H_out, W_out)
            self._cache = (x.shape, y.shape, masks, None)
        else:
            y, arg = max_pool2d(x, **self._geometry())  # (N, C, H_out, W_out)
            self._cache = (x.shape, y.shape, None, arg)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, y_shape, masks, arg = self._cached()
        self._check_dy(dy, y_shape)
        if masks is not None:
            return max_pool2d_2x2_backward(dy, masks, x_shape)  # (N, C, H, W)
        return max_pool2d_backward(dy, arg, x_shape, **self._geometry())  # (N, C, H, W)

    def is_2x2(self, shape: tuple[int, ...]) -> bool:
        """True when the 2x2 / stride-2 fast path applies to inputs of ``shape``."""
        simple = self._kernel == self._step == (2, 2) and self._pads == (0, 0, 0, 0) and len(shape) == 4
        return simple and not (self.ceil_mode and (shape[2] % 2 or shape[3] % 2))


class AvgPool2D(_Pool2D):
    """Average pooling over 2D windows: each output cell is the mean of its window.

    The readable version, one loop per output cell:
    ``cnnlab.functional.reference_pool.avg_pool2d_loops`` (and ``avg_pool2d_backward_loops``).

    Args:
        kernel_size: window size, an int or ``(KH, KW)``.
        stride: step between windows; None (default) means ``kernel_size``.
        padding: implicit zero padding on each side, at most ``kernel_size // 2``; or
            ONNX's four pads ``(top, left, bottom, right)``, each smaller than the kernel.
        ceil_mode: round the output size up, keeping a last partial window.
        count_include_pad: divide by the window size including padded zeros (PyTorch's
            default); False divides by the number of input cells in the window only.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, H_out, W_out) with
          H_out = floor((H + 2*padding - kernel_size) / stride) + 1 (ceil with ceil_mode, and a
          last window that would start in the right padding dropped); W_out likewise. With
          four pads, H + top + bottom replaces H + 2*padding.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling import AvgPool2D
        >>> AvgPool2D(2).forward(np.arange(16.0).reshape(1, 1, 4, 4)).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """

    torch = TorchSpec(
        "torch.nn.AvgPool2d",
        also=("cnnlab.interop.torch_modules.PaddedAvgPool2d",),
        onnx_ops=("AveragePool",),
    )

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: Padding = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            raise arg_error(self.name, "count_include_pad", "True or False", count_include_pad)
        self.count_include_pad = bool(count_include_pad)

    def torch_args(self) -> dict[str, Any]:
        return super().torch_args() | {"count_include_pad": self.count_include_pad}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if getattr(module, "divisor_override", None) is not None:
            raise unsupported_torch(module, "divisor_override is not supported")
        return super().from_torch_args(module) | {"count_include_pad": module.count_include_pad}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(4,))
        self.output_shape(x.shape)
        y = avg_pool2d(
            x, **self._geometry(), count_include_pad=self.count_include_pad
        )  # (N, C, H_out, W_out)
        self._cache = (x.shape, y.shape)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, y_shape = self._cached()
        self._check_dy(dy, y_shape)
        return avg_pool2d_backward(dy, x_shape, **self._geometry(), count_include_pad=self.count_include_pad)


class GlobalAvgPool2D(Layer):
    """Global average pooling: the mean of each whole feature map, ``(N, C, H, W) -> (N, C)``.

    Often replaces Flatten + Dense at the end of a CNN; it works for any H and W.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C)

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling import GlobalAvgPool2D
        >>> GlobalAvgPool2D().forward(np.ones((2, 3, 5, 5), dtype=np.float32)).shape
        (2, 3)
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.GlobalAvgPool2d", onnx_ops=("GlobalAveragePool",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(4,))
        self._cache = x.shape
        return global_avg_pool2d(x)  # (N, C)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self._cached()
        if dy.shape != tuple(x_shape[:2]):
            raise ShapeError(f"{self.name}: dy must have shape {x_shape[:2]}. Received: shape {dy.shape}")
        return global_avg_pool2d_backward(dy, x_shape)  # (N, C, H, W)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 4:
            raise ShapeError(
                f"{self.name}: input must have shape (N, C, H, W). Received: shape {tuple(input_shape)}"
            )
        return (input_shape[0], input_shape[1])
