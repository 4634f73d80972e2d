"""What ``Conv2D`` calls: the compiled kernels where they apply and passed their check, else NumPy.

Same signatures and results as ``cnnlab.functional.conv.conv2d_forward`` / ``conv2d_backward``.
"""

from __future__ import annotations

import weakref

import numpy as np

from cnnlab.functional import conv as numpy_conv
from cnnlab.functional.conv import ConvWorkspace

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]

# ConvWorkspace -> (input of the last compiled forward, what backward needs from it).
_SAVED: weakref.WeakKeyDictionary[ConvWorkspace, tuple[np.ndarray, object]] = weakref.WeakKeyDictionary()
# ConvWorkspace -> the compiled kernels' reusable buffers of that layer.
_BUFFERS: weakref.WeakKeyDictionary[ConvWorkspace, object] = weakref.WeakKeyDictionary()


def _buffers(workspace: ConvWorkspace) -> object:
    from cnnlab.kernels import conv

    bufs = _BUFFERS.get(workspace)
    if bufs is None:
        bufs = _BUFFERS[workspace] = conv.Buffers()
    return bufs


#: With CNNLAB_KERNELS unset ("auto"), only the convolutions where the generated kernel
#: measured faster than im2col + GEMM run compiled: stride 1 with 8 to 16 channels in and
#: out (16 -> 16 at 28x28 / 32x32: 0.64-0.72x the CPU time of the NumPy engine; 32 -> 32
#: 0.98x; 1-3 input channels, stride 2 and 64 channels slower, 1.2-2.1x; table in
#: docs/performance.md, "Compiled kernel tier"). CNNLAB_KERNELS=compiled uses the compiled
#: kernel for every supported convolution.
AUTO_CHANNELS = (8, 16)


def auto_prefers_compiled(C_in: int, C_out: int, stride: Pair) -> bool:
    """The measured rule of "auto": True where the compiled kernel was the faster one."""
    low, high = AUTO_CHANNELS
    return stride == (1, 1) and low <= min(C_in, C_out) and max(C_in, C_out) <= high


def use_compiled(
    x_shape: tuple[int, ...], weight: np.ndarray, pads: Pads, stride: Pair, dilation: Pair
) -> bool:
    """True when this convolution runs on the compiled tier."""
    from cnnlab.kernels.select import choice, tier

    if tier() != "compiled":
        return False
    from cnnlab.kernels import check, conv

    C_out, C_in, KH, KW = weight.shape
    if choice() == "auto" and not auto_prefers_compiled(C_in, C_out, stride):
        return False
    if not conv.supported(x_shape, (KH, KW), pads, stride, dilation, weight.dtype):
        return False
    return check.verified(C_in, C_out, (KH, KW), pads, stride, weight.dtype)


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads,
    stride: Pair,
    dilation: Pair,
    workspace: ConvWorkspace,
) -> np.ndarray:
    """``functional.conv.conv2d_forward`` on the tier in use."""
    if use_compiled(x.shape, weight, pads, stride, dilation):
        from cnnlab.kernels import conv

        y, saved = conv.forward(x, weight, bias, pads, stride, _buffers(workspace))  # type: ignore[arg-type]
        _SAVED[workspace] = (x, saved)
        return y
    _SAVED.pop(workspace, None)
    return numpy_conv.conv2d_forward(x, weight, bias, pads, stride, dilation, workspace)


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads,
    stride: Pair,
    dilation: Pair,
    need_dx: bool,
    workspace: ConvWorkspace,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``functional.conv.conv2d_backward`` on the tier in use."""
    saved = _SAVED.pop(workspace, None)
    if use_compiled(x.shape, weight, pads, stride, dilation):
        from cnnlab.kernels import conv

        packed = saved[1] if saved is not None and saved[0] is x else None
        return conv.backward(dy, x, weight, pads, stride, need_dx, packed, _buffers(workspace))  # type: ignore[arg-type]
    return numpy_conv.conv2d_backward(dy, x, weight, pads, stride, dilation, need_dx, workspace)
