"""1-D pooling layers over (N, C, L): windows along time, and max over all of time.

``MaxPool1D`` / ``AvgPool1D`` are PyTorch's ``nn.MaxPool1d`` / ``nn.AvgPool1d`` (the same
arguments and numbers; the kernels are the 2-D ones on a 1 x K window,
``cnnlab.functional.pool1d``). ``GlobalMaxPool1D`` is the text CNN's max-over-time pooling
(Kim, 2014): (N, C, L) -> (N, C), optionally ignoring padded positions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int, is_int
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.pool1d import (
    avg_pool1d,
    avg_pool1d_backward,
    global_max_pool1d,
    global_max_pool1d_backward,
    lengths_to_mask,
    max_pool1d,
    max_pool1d_backward,
)
from cnnlab.layers.base import Layer, TorchSpec, unsupported_torch
from cnnlab.layers.conv1d import one
from cnnlab.layers.pooling import pool_axis


def _check_3d(name: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{name}: input must have shape (N, C, L). Received: shape {tuple(shape)}")
    N, C, L = shape
    return N, C, L


class _Pool1D(Layer):
    """Shared argument checks, sizes and formula of MaxPool1D and AvgPool1D."""

    def __init__(self, kernel_size: int, stride: int | None, padding: int, ceil_mode: bool) -> None:
        super().__init__()
        check_int(self.name, "kernel_size", kernel_size)
        if stride is not None and (not is_int(stride) or stride < 1):
            raise arg_error(self.name, "stride", "a positive int or None", stride)
        check_int(self.name, "padding", padding, minimum=0)
        if padding > kernel_size // 2:  # PyTorch's rule: a window may not be more than half padding
            raise arg_error(
                self.name, "padding", f"at most half of kernel_size={kernel_size} (as in PyTorch)", padding
            )
        if not isinstance(ceil_mode, (bool, np.bool_)):
            raise arg_error(self.name, "ceil_mode", "True or False", ceil_mode)
        self.kernel_size, self.padding, self.ceil_mode = int(kernel_size), int(padding), bool(ceil_mode)
        self.stride = None if stride is None else int(stride)
        self._step = self.kernel_size if stride is None else int(stride)

    def _size(self, input_shape: tuple[int, ...]) -> tuple[int, str]:
        """(L_out, the formula with numbers); raises ShapeError when no window fits."""
        _, _, L = _check_3d(self.name, input_shape)
        K, S, P = self.kernel_size, self._step, self.padding
        out, text = pool_axis(L, K, S, P, P, self.ceil_mode)
        if out < 1:
            raise ShapeError(
                f"{self.name}: input of shape {tuple(input_shape)} is too short for kernel_size="
                f"{K}, stride={S}, padding={P}: L_out = {text}. Received: shape {tuple(input_shape)}"
            )
        return out, text

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], input_shape[1], self._size(input_shape)[0])

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        return self._size(input_shape)[1]

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """One op per window element per output cell."""
        return math.prod(self.output_shape(input_shape)[1:]) * self.kernel_size

    def torch_args(self) -> dict[str, Any]:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,  # None is torch's "the kernel size" too
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
        }

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        kernel, stride = one(module.kernel_size), one(module.stride)
        return {
            "kernel_size": kernel,
            "stride": None if stride == kernel else stride,
            "padding": one(module.padding),
            "ceil_mode": module.ceil_mode,
        }

    def _window(self) -> tuple[int, int, int, bool]:
        return self.kernel_size, self._step, self.padding, self.ceil_mode


class MaxPool1D(_Pool1D):
    """Max pooling along L: each output is the largest value of its window (PyTorch's nn.MaxPool1d).

    Padding counts as ``-inf`` (it never wins); the gradient goes to the first max of each
    window, as in PyTorch.

    Args:
        kernel_size: window width K.
        stride: step between windows; None (default) means ``kernel_size``.
        padding: implicit ``-inf`` on both sides, at most ``kernel_size // 2``.
        ceil_mode: round the output length up, keeping a last partial window.

    Shape:
        - Input: (N, C, L)
        - Output: (N, C, L_out), L_out = floor((L + 2*padding - kernel_size) / stride) + 1
          (ceil with ceil_mode, a last window that would start in the right padding dropped).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling1d import MaxPool1D
        >>> MaxPool1D(2).forward(np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]])).tolist()
        [[[3.0, 5.0]]]
        >>> MaxPool1D(3, stride=2, padding=1).formula((1, 1, 5))
        'floor((5 - 3 + 2*1) / 2) + 1 = 3'
    """

    torch = TorchSpec("torch.nn.MaxPool1d", onnx_ops=("MaxPool",))

    def __init__(
        self, kernel_size: int, stride: int | None = None, padding: int = 0, ceil_mode: bool = False
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if one(module.dilation) != 1 or module.return_indices:
            raise unsupported_torch(module, "dilation and return_indices are not supported")
        return super().from_torch_args(module)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(3,))
        self.output_shape(x.shape)  # the clear error for inputs shorter than a window
        y, arg = max_pool1d(x, *self._window())  # (N, C, L_out)
        self._cache = (x.shape, y.shape, arg)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, y_shape, arg = self._cached()
        self._check_dy(dy, y_shape)
        return max_pool1d_backward(dy, arg, x_shape, *self._window())  # (N, C, L)


class AvgPool1D(_Pool1D):
    """Average pooling along L: each output is the mean of its window (PyTorch's nn.AvgPool1d).

    Args:
        kernel_size: window width K.
        stride: step between windows; None (default) means ``kernel_size``.
        padding: implicit zeros on both sides, at most ``kernel_size // 2``.
        ceil_mode: round the output length up, keeping a last partial window.
        count_include_pad: divide by the window size including padded zeros (PyTorch's
            default); False divides by the number of input cells in the window only.

    Shape:
        - Input: (N, C, L)
        - Output: (N, C, L_out), L_out = floor((L + 2*padding - kernel_size) / stride) + 1
          (ceil with ceil_mode, a last window that would start in the right padding dropped).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling1d import AvgPool1D
        >>> AvgPool1D(2).forward(np.array([[[1.0, 3.0, 2.0, 5.0, 4.0]]])).tolist()
        [[[2.0, 3.5]]]
    """

    torch = TorchSpec("torch.nn.AvgPool1d", onnx_ops=("AveragePool",))

    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int = 0,
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
        return super().from_torch_args(module) | {"count_include_pad": module.count_include_pad}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, ndims=(3,))
        self.output_shape(x.shape)
        y = avg_pool1d(x, *self._window(), self.count_include_pad)  # (N, C, L_out)
        self._cache = (x.shape, y.shape)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, y_shape = self._cached()
        self._check_dy(dy, y_shape)
        return avg_pool1d_backward(dy, x_shape, *self._window(), self.count_include_pad)  # (N, C, L)


class GlobalMaxPool1D(Layer):
    """Max over time: the largest value of each feature map, ``(N, C, L) -> (N, C)``.

    The text CNN's pooling (Kim, 2014): whatever the sentence length, each filter reports
    its strongest match; the position that won gets the whole gradient (the first one on
    ties). Equals PyTorch's ``nn.AdaptiveMaxPool1d(1)`` followed by a squeeze of the last axis.

    Padded positions: in a batch of sentences padded to one length, pass which positions
    are real, so padding never wins (masked positions count as ``-inf`` and get no gradient):

    - ``forward(x, lengths=...)``: (N,) ints, positions ``t < lengths[n]`` are real; after a
      Conv1D, convert token lengths with ``conv.output_lengths(lengths, L)``;
    - ``forward(x, mask=...)``: an (N, L) boolean array, True at real positions.

    Every example needs at least one real position. Inside a ``Sequential`` (which calls
    ``forward(x)`` only) the layer takes the max over all positions, as PyTorch's does.

    Shape:
        - Input: (N, C, L); lengths (N,) or mask (N, L)
        - Output: (N, C)

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.pooling1d import GlobalMaxPool1D
        >>> x = np.array([[[1.0, 4.0, 9.0], [2.0, 0.0, 1.0]]])  # (N=1, C=2, L=3)
        >>> GlobalMaxPool1D().forward(x).tolist()
        [[9.0, 2.0]]
        >>> GlobalMaxPool1D().forward(x, lengths=np.array([2])).tolist()  # the 9 sits in padding
        [[4.0, 2.0]]
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.GlobalMaxPool1d", onnx_ops=("ReduceMax",))

    @quiet_fp_method
    def forward(
        self, x: np.ndarray, mask: np.ndarray | None = None, lengths: np.ndarray | None = None
    ) -> np.ndarray:
        self._check_input(x, ndims=(3,))
        N, _, L = x.shape
        if L < 1:
            raise ShapeError(
                f"{self.name}: input must have at least 1 position (L >= 1). Received: shape {x.shape}"
            )
        real = self._real_positions(N, L, mask, lengths)
        y, arg = global_max_pool1d(x, real)  # (N, C)
        self._cache = (x.shape, arg)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, arg = self._cached()
        if dy.shape != tuple(x_shape[:2]):
            raise ShapeError(
                f"{self.name}: dy must have shape {tuple(x_shape[:2])}. Received: shape {dy.shape}"
            )
        return global_max_pool1d_backward(dy, arg, x_shape)  # (N, C, L)

    def _real_positions(
        self, N: int, L: int, mask: np.ndarray | None, lengths: np.ndarray | None
    ) -> np.ndarray | None:
        """The (N, L) boolean mask of real positions from ``mask`` or ``lengths``, checked."""
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.name}: pass `mask` or `lengths`, not both")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
                raise ShapeError(
                    f"{self.name}: `lengths` must be {N} ints (one per example, shape ({N},)). "
                    f"Received: shape {lengths.shape}, dtype {lengths.dtype}"
                )
            bad = np.flatnonzero((lengths < 1) | (lengths > L))
            if bad.size:
                raise ValueError(
                    f"{self.name}: every length must be in [1, {L}] (L = {L} positions). "
                    f"Received: lengths[{bad[0]}]={int(lengths[bad[0]])}"
                )
            return lengths_to_mask(lengths, L)
        if mask is None:
            return None
        mask = np.asarray(mask)
        if mask.shape != (N, L) or mask.dtype != np.bool_:
            raise ShapeError(
                f"{self.name}: `mask` must be a boolean array of shape ({N}, {L}) (True at real positions). "
                f"Received: shape {mask.shape}, dtype {mask.dtype}"
            )
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(
                f"{self.name}: every example needs at least one real position in `mask`. "
                f"Received: no True in mask[{empty[0]}]"
            )
        return mask

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        N, C, _ = _check_3d(self.name, input_shape)
        return (N, C)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """One comparison per input element."""
        return math.prod(input_shape[1:])
