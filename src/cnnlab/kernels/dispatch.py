"""What ``Conv2D`` calls: the compiled kernels where they apply and passed their check, else NumPy.

Same signatures and results as ``cnnlab.functional.conv.conv2d_forward`` / ``conv2d_backward``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np

from cnnlab.functional import conv as numpy_conv
from cnnlab.functional.conv import ConvWorkspace

if TYPE_CHECKING:  # the compiled module imports numba's setup lazily; only its type here
    from cnnlab.kernels.conv import Buffers

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]

# ConvWorkspace -> (input of the last compiled forward, what backward needs from it).
_SAVED: weakref.WeakKeyDictionary[ConvWorkspace, tuple[np.ndarray, object]] = weakref.WeakKeyDictionary()
# ConvWorkspace -> the compiled kernels' reusable buffers of that layer.
_BUFFERS: weakref.WeakKeyDictionary[ConvWorkspace, Buffers] = weakref.WeakKeyDictionary()
# ConvWorkspace -> the tier its last forward ran on ("numpy" or "compiled").
_LAST_TIER: weakref.WeakKeyDictionary[ConvWorkspace, str] = weakref.WeakKeyDictionary()


def last_tier(workspace: ConvWorkspace) -> str | None:
    """ "numpy" or "compiled": where the last forward with this workspace ran (None: none yet)."""
    return _LAST_TIER.get(workspace)


def _buffers(workspace: ConvWorkspace) -> Buffers:
    from cnnlab.kernels import conv

    bufs = _BUFFERS.get(workspace)
    if bufs is None:
        bufs = _BUFFERS[workspace] = conv.Buffers()
    return bufs


#: With CNNLAB_KERNELS unset ("auto"), only the convolutions where the generated kernel
#: measured faster than im2col + GEMM run compiled: stride 1, 8 to 16 channels in and out,
#: and at least AUTO_MIN_POSITIONS input pixels per channel in the batch (N*H*W). Measured
#: in the train step of the zoo resnet and the fashion recipe's net (idle 2-core machine,
#: forward + backward of one 16 -> 16 conv): batch 128 15.4 vs 21.9 ms (32x32) and 13.0 vs
#: 16.7 ms (28x28); batch 64 8.0 vs 11.3 and 6.0 vs 8.5 ms; batch 32 (32,768 and 25,088
#: pixels) 4.3-6.2 vs 3.8-5.3 ms, no gain. 32 -> 32 tied, stride 2, 1-3 input channels and
#: 64 channels lost (1.2-2x). Table: docs/performance.md, "Compiled kernel tier".
#: CNNLAB_KERNELS=compiled uses the compiled kernel for every supported convolution.
AUTO_CHANNELS = (8, 16)
AUTO_MIN_POSITIONS = 40_000


def auto_prefers_compiled(C_in: int, C_out: int, stride: Pair, positions: int = AUTO_MIN_POSITIONS) -> bool:
    """The measured rule of "auto": True where the compiled kernel was the faster one.

    ``positions``: N*H*W of the input (the pixels per channel one call works on).
    """
    low, high = AUTO_CHANNELS
    return (
        stride == (1, 1)
        and low <= min(C_in, C_out)
        and max(C_in, C_out) <= high
        and positions >= AUTO_MIN_POSITIONS
    )


def use_compiled(
    x_shape: tuple[int, ...], weight: np.ndarray, pads: Pads, stride: Pair, dilation: Pair
) -> bool:
    """True when this convolution runs on the compiled tier."""
    from cnnlab.kernels.select import choice, tier

    if tier() != "compiled":
        return False
    from cnnlab.kernels import check, conv

    C_out, C_in, KH, KW = weight.shape
    positions = int(np.prod(x_shape[:1] + x_shape[2:]))  # N*H*W
    if choice() == "auto" and not auto_prefers_compiled(C_in, C_out, stride, positions):
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

        y, saved = conv.forward(x, weight, bias, pads, stride, _buffers(workspace))
        _SAVED[workspace] = (x, saved)
        _LAST_TIER[workspace] = "compiled"
        return y
    _SAVED.pop(workspace, None)
    _LAST_TIER[workspace] = "numpy"
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
