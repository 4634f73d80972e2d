"""Stateless pooling kernels: max, average and global average pooling over NCHW arrays.

The semantics are PyTorch's (``torch.nn.functional.max_pool2d`` / ``avg_pool2d``):

- output size ``floor((H + 2*P - K) / S) + 1``, or ``ceil(...) + 1`` with ``ceil_mode``, where
  a last window that would start in the right padding is dropped (the last window must start
  inside the input or the left padding);
- ``padding`` is an int, a pair ``(PH, PW)``, or ONNX's four ``pads`` ``(top, left, bottom,
  right)`` (asymmetric: ``H + top + bottom`` replaces ``H + 2*P``, and the ceil-mode rule
  counts the left/top padding);
- max pooling pads with ``-inf``; when several values tie for the maximum, the gradient goes to
  the FIRST one in row-major window order (ties are common after ReLU);
- average pooling pads with zeros; with ``count_include_pad`` the divisor counts the padded
  cells of the window clipped to ``H + P`` (windows that ceil mode lets run past the right
  padding are not charged for the overhang), without it only the input cells.

No Python loop runs over the batch or the pixels: only over the ``KH*KW`` window offsets.
``functional/reference_pool.py`` holds the slow, readable loop versions used by the tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.errors import ShapeError, arg_error, int_pair, is_int
from cnnlab.utils import split_channels

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, left, bottom, right): the order of ONNX's `pads`
Padding = int | Pair | Pads

#: Bytes of input one 2x2 pooling pass handles at a time: its steps run over a block of
#: channels while the block is in cache (each input is read twice, each half-way result too).
BLOCK_BYTES = 2**18


def _in_blocks(work: Callable[[int, int], None], c0: int, c1: int, channel_bytes: int) -> None:
    """``work(b0, b1)`` over channel blocks of c0:c1 of at most ``BLOCK_BYTES`` (one channel at least)."""
    step = max(1, BLOCK_BYTES // max(channel_bytes, 1))
    for b0 in range(c0, c1, step):
        work(b0, min(c1, b0 + step))


def pool_pads(where: str, padding: Padding) -> Pads:
    """``padding`` as ``(top, left, bottom, right)``: an int, ``(PH, PW)`` or ONNX's four pads.

    Example:
        >>> pool_pads("pool2d", 1), pool_pads("pool2d", (1, 2)), pool_pads("pool2d", (0, 0, 1, 1))
        ((1, 1, 1, 1), (1, 2, 1, 2), (0, 0, 1, 1))
    """
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        if not all(is_int(p) and p >= 0 for p in padding):
            raise arg_error(where, "padding", PADDING_EXPECTED, padding)
        top, left, bottom, right = (int(p) for p in padding)
        return top, left, bottom, right
    try:
        ph, pw = int_pair(where, "padding", padding, 0)
    except ValueError:
        raise arg_error(where, "padding", PADDING_EXPECTED, padding) from None
    return ph, pw, ph, pw


#: What ``pool_pads`` accepts, for its error message.
PADDING_EXPECTED = "an int >= 0, a pair of them, or four (top, left, bottom, right) as ONNX's pads"


def pool_output_size(
    size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False, padding_end: int | None = None
) -> int:
    """Output length along one axis, exactly as PyTorch computes it (may be < 1 for tiny inputs).

    ``padding`` is the padding before the input (top/left); ``padding_end`` the one after it
    (bottom/right), the same as ``padding`` when None.

    Example:
        >>> pool_output_size(28, 2, 2, 0), pool_output_size(5, 2, 2, 0, ceil_mode=True)
        (14, 3)
        >>> pool_output_size(5, 2, 2, 0, padding_end=1)  # (5 + 0 + 1 - 2) / 2 + 1
        3
    """
    end = padding if padding_end is None else padding_end
    span = size + padding + end - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    # Ceil mode may add a window; PyTorch drops it when it would start in the right padding
    # (the last window must start inside the input or the left padding).
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _geometry(
    shape: tuple[int, ...],
    kernel_size: int | Pair,
    stride: int | Pair | None,
    padding: Padding,
    ceil_mode: bool,
) -> tuple[Pair, Pair, Pads, Pair, Pair]:
    """Normalize the arguments; return kernel, stride, pads (top, left, bottom, right), output
    size and padded size."""
    _, _, H, W = shape
    kernel = int_pair("pool2d", "kernel_size", kernel_size)
    step = kernel if stride is None else int_pair("pool2d", "stride", stride)
    pads = pool_pads("pool2d", padding)
    pad = (pads[0], pads[1])  # (top, left): where the input starts in the padded array
    out = (
        pool_output_size(H, kernel[0], step[0], pads[0], ceil_mode, pads[2]),
        pool_output_size(W, kernel[1], step[1], pads[1], ceil_mode, pads[3]),
    )
    if out[0] < 1 or out[1] < 1:
        raise ShapeError(
            f"pool2d: input of shape {tuple(shape)} is too small for kernel_size={kernel}, "
            f"stride={step}, padding={pad if pad == pads[2:] else pads}: "
            f"the output would be {out[0]}x{out[1]}"
        )
    # The padded input must hold every window (ceil mode may need more than P on the right)
    # and every input cell (floor mode may leave the last rows out of all windows).
    padded = (
        max((out[0] - 1) * step[0] + kernel[0], pad[0] + H),
        max((out[1] - 1) * step[1] + kernel[1], pad[1] + W),
    )
    return kernel, step, pads, out, padded


def _pad(x: np.ndarray, pad: Pair, padded: Pair, value: float) -> np.ndarray:
    """Place ``x`` at offset ``pad`` in a ``value``-filled array of spatial size ``padded``."""
    N, C, H, W = x.shape
    if pad == (0, 0) and padded == (H, W):
        return x
    xp = np.full((N, C, *padded), value, dtype=x.dtype)  # (N, C, Hp, Wp)
    xp[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W] = x
    return xp


def _offset_view(a: np.ndarray, i: int, j: int, step: Pair, out: Pair) -> np.ndarray:
    """The cells at window offset ``(i, j)`` of every window: a strided view ``(N, C, H_out, W_out)``."""
    return a[:, :, i : i + step[0] * (out[0] - 1) + 1 : step[0], j : j + step[1] * (out[1] - 1) + 1 : step[1]]


def _unpad(dxp: np.ndarray, pad: Pair, shape: tuple[int, ...]) -> np.ndarray:
    """Crop the gradient of the padded input back to the input's shape."""
    H, W = shape[2], shape[3]
    if dxp.shape == tuple(shape):
        return dxp
    return np.ascontiguousarray(dxp[:, :, pad[0] : pad[0] + H, pad[1] : pad[1] + W])  # (N, C, H, W)


# ---- max pooling -----------------------------------------------------------------------------
def max_pool2d(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling; returns the output and, per output cell, the flat window index of the max.

    The index ``kh * KW + kw`` (row-major, first max on ties) is what ``max_pool2d_backward``
    routes the gradient through.

    Example:
        >>> x = np.array([[[[1., 3.], [3., 0.]]]])
        >>> y, arg = max_pool2d(x, 2)
        >>> y.ravel().tolist(), arg.ravel().tolist()
        ([3.0], [1])
    """
    kernel, step, pads, out, padded = _geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    return _max_pool_windows(x, kernel, step, (pads[0], pads[1]), out, padded)


def max_pool2d_2x2(x: np.ndarray, relu: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """2x2 / stride-2 max pooling in two pairwise steps; returns ``y`` and the routing masks.

    Step 1 takes the max of each pair of columns, step 2 of each pair of rows of that. Each
    step's mask says where the SECOND candidate won (strictly larger), so ties go to the first
    one in row-major order, as in PyTorch. Two ``maximum`` and two ``greater`` over strided
    views: about 2x cheaper than building a window index (``max_pool2d``). Outputs keep
    the memory order of ``x`` (a CNHW-backed input gives CNHW-backed outputs), and the work
    is split over channels on all cores. An odd last row/column is in no window.

    With ``relu=True`` it returns ``maxpool(relu(x))`` = ``relu(maxpool(x))`` (max commutes
    with a monotone function) at a quarter of the cost of a ReLU over ``x``; the masks are
    those of pooling ``x`` (``cnnlab.layers.fuse.ReLUMaxPool2D`` uses this).

    Example:
        >>> y, masks = max_pool2d_2x2(np.array([[[[1., 3.], [3., 0.]]]]))
        >>> y.ravel().tolist(), max_pool2d_2x2_backward(np.ones_like(y), masks, (1, 1, 2, 2)).ravel().tolist()
        ([3.0], [0.0, 1.0, 0.0, 0.0])
    """
    N, C, H, W = x.shape
    x = x[:, :, : H - H % 2, : W - W % 2]  # (N, C, 2*H_out, 2*W_out)
    half = x[..., 0::2]  # (N, C, 2*H_out, W_out): the shape of step 1's results
    h = _alloc_like(x, half.shape, x.dtype, zero=False)  # (N, C, 2*H_out, W_out)
    right_wins = _alloc_like(x, half.shape, np.dtype(bool), zero=False)
    out = (N, C, H // 2, W // 2)
    y = _alloc_like(x, out, x.dtype, zero=False)  # (N, C, H_out, W_out)
    bottom_wins = _alloc_like(x, out, np.dtype(bool), zero=False)

    def block(c0: int, c1: int) -> None:
        xs = x[:, c0:c1]
        left, right = xs[..., 0::2], xs[..., 1::2]
        hs = np.maximum(left, right, out=h[:, c0:c1])
        np.greater(right, left, out=right_wins[:, c0:c1])
        top, bottom = hs[:, :, 0::2], hs[:, :, 1::2]
        ys = np.maximum(top, bottom, out=y[:, c0:c1])
        np.greater(bottom, top, out=bottom_wins[:, c0:c1])
        if relu:
            np.maximum(ys, 0, out=ys)

    channel_bytes = N * H * W * x.itemsize
    split_channels(lambda c0, c1: _in_blocks(block, c0, c1, channel_bytes), C, x.size)
    return y, (right_wins, bottom_wins)


def max_pool2d_2x2_backward(
    dy: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray],
    x_shape: tuple[int, ...],
    relu_y: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of ``max_pool2d_2x2``: route ``dy`` back through the two steps' masks.

    No zero fill and no read of the result: the four strided writes cover every cell of
    the even part. ``dx`` has the memory order of the masks (that of the forward input).
    Pass the forward output of ``relu=True`` as ``relu_y`` to get the gradient with respect
    to the input of the ReLU (dy is zeroed where ``relu_y == 0``, before routing).
    """
    right_wins, bottom_wins = masks
    N, C, H, W = x_shape
    if _axis_order(dy) != _axis_order(bottom_wins):  # e.g. dy from Flatten: one small copy
        moved = _alloc_like(bottom_wins, dy.shape, dy.dtype, zero=False)
        moved[...] = dy
        dy = moved
    dh = np.empty_like(right_wins, dtype=dy.dtype)  # (N, C, 2*H_out, W_out)
    # An odd last row/column gets no gradient: zero-fill only then.
    dx = _alloc_like(right_wins, (N, C, H, W), dy.dtype, zero=bool(H % 2 or W % 2))  # (N, C, H, W)
    dxe = dx[:, :, : H - H % 2, : W - W % 2]  # (N, C, 2*H_out, 2*W_out)

    def block(c0: int, c1: int) -> None:
        g = dy[:, c0:c1]
        if relu_y is not None:  # ReLU's rule, on the pooled (4x smaller) array
            g = g * (relu_y[:, c0:c1] > 0)
        bw, rw, d = bottom_wins[:, c0:c1], right_wins[:, c0:c1], dh[:, c0:c1]
        # The winner gets g, the other cell g - g = 0 (exact for finite g; cheaper than a NOT).
        win = np.multiply(g, bw, out=d[:, :, 1::2])
        np.subtract(g, win, out=d[:, :, 0::2])
        win = np.multiply(d, rw, out=dxe[:, c0:c1, :, 1::2])
        np.subtract(d, win, out=dxe[:, c0:c1, :, 0::2])

    channel_bytes = N * H * W * dx.itemsize
    split_channels(lambda c0, c1: _in_blocks(block, c0, c1, channel_bytes), C, dx.size)
    return dx


def _axis_order(a: np.ndarray) -> list[int]:
    """Axes from outermost to innermost in memory (the layout, whatever the shape says)."""
    return sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis]))


def _alloc_like(ref: np.ndarray, shape: tuple[int, ...], dtype: np.dtype, zero: bool) -> np.ndarray:
    """A new array of ``shape`` whose axes are laid out in memory in the order of ``ref``'s."""
    order = _axis_order(ref)
    buf = (np.zeros if zero else np.empty)([shape[a] for a in order], dtype)
    return buf.transpose(np.argsort(order))


def _max_pool_windows(
    x: np.ndarray, kernel: Pair, step: Pair, pad: Pair, out: Pair, padded: Pair
) -> tuple[np.ndarray, np.ndarray]:
    """General path: argmax over each flattened window of the ``-inf``-padded input."""
    N, C, _, _ = x.shape
    xp = _pad(x, pad, padded, -np.inf)  # (N, C, Hp, Wp)
    windows = sliding_window_view(xp, kernel, axis=(2, 3))[:, :, :: step[0], :: step[1]]
    windows = windows[:, :, : out[0], : out[1]]  # (N, C, H_out, W_out, KH, KW), a view
    flat = windows.reshape(N, C, out[0], out[1], kernel[0] * kernel[1])  # (N, C, H_out, W_out, KH*KW)
    arg = flat.argmax(axis=-1)  # first max on ties  # (N, C, H_out, W_out)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]  # (N, C, H_out, W_out)
    small = np.uint8 if kernel[0] * kernel[1] <= 256 else np.int64
    return y, arg.astype(small)


def max_pool2d_backward(
    dy: np.ndarray,
    arg: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of max pooling: each ``dy`` cell goes to its window's (first) max.

    Per window offset ``k``, the cells whose max sits at ``k`` receive ``dy`` through one
    strided view; overlapping windows (stride < kernel) add up across offsets.
    """
    kernel, step, pads, out, padded = _geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    N, C = x_shape[0], x_shape[1]
    dxp = _alloc_like(arg, (N, C, *padded), dy.dtype, zero=True)  # (N, C, Hp, Wp), arg's memory order
    overlap = step[0] < kernel[0] or step[1] < kernel[1]
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            view = _offset_view(dxp, i, j, step, out)  # (N, C, H_out, W_out)
            routed = arg == i * kernel[1] + j
            if overlap:
                view += dy * routed
            else:  # each input cell belongs to at most one window: assign, no read
                np.multiply(dy, routed, out=view)
    return _unpad(dxp, (pads[0], pads[1]), x_shape)


# ---- average pooling -------------------------------------------------------------------------
def _divisor_1d(
    size: int, kernel: int, stride: int, padding: int, n_out: int, include_pad: bool, padding_end: int
) -> np.ndarray:
    """Per output position along one axis: how many cells the window is divided by.

    PyTorch's rule: the window ``[o*S - P, o*S - P + K)`` is clipped to ``H + P_end`` (the
    padded input) for ``count_include_pad=True``, and to the input ``[0, H)`` otherwise.
    """
    start = np.arange(n_out) * stride - padding
    end = np.minimum(start + kernel, size + padding_end)
    if include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def _avg_divisor(
    shape: tuple[int, ...],
    kernel: Pair,
    step: Pair,
    pads: Pads,
    out: Pair,
    include_pad: bool,
    dtype: np.dtype,
) -> np.ndarray:
    """The divisor of every output cell, ``(H_out, W_out)``; the rule factors by axis."""
    dh = _divisor_1d(shape[2], kernel[0], step[0], pads[0], out[0], include_pad, pads[2])
    dw = _divisor_1d(shape[3], kernel[1], step[1], pads[1], out[1], include_pad, pads[3])
    return np.outer(dh, dw).astype(dtype)  # (H_out, W_out)


def avg_pool2d(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling: the sum over each zero-padded window divided by PyTorch's divisor.

    Example:
        >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
        >>> avg_pool2d(x, 2).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    kernel, step, pads, out, padded = _geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = _pad(x, (pads[0], pads[1]), padded, 0.0)  # (N, C, Hp, Wp)
    total = np.zeros((*x.shape[:2], *out), dtype=x.dtype)  # (N, C, H_out, W_out)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            total += _offset_view(xp, i, j, step, out)
    total /= _avg_divisor(x.shape, kernel, step, pads, out, count_include_pad, x.dtype)
    return total


def avg_pool2d_backward(
    dy: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: Padding = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Gradient of average pooling: every window cell receives ``dy / divisor``."""
    kernel, step, pads, out, padded = _geometry(x_shape, kernel_size, stride, padding, ceil_mode)
    g = dy / _avg_divisor(
        x_shape, kernel, step, pads, out, count_include_pad, dy.dtype
    )  # (N, C, H_out, W_out)
    dxp = np.zeros((x_shape[0], x_shape[1], *padded), dtype=dy.dtype)  # (N, C, Hp, Wp)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            _offset_view(dxp, i, j, step, out)[...] += g  # overlapping windows add up
    return _unpad(dxp, (pads[0], pads[1]), x_shape)


# ---- global average pooling ------------------------------------------------------------------
def global_avg_pool2d(x: np.ndarray) -> np.ndarray:
    """Mean over the spatial axes: ``(N, C, H, W) -> (N, C)``.

    Example:
        >>> global_avg_pool2d(np.ones((2, 3, 4, 5))).shape
        (2, 3)
    """
    return x.mean(axis=(2, 3))  # (N, C)


def global_avg_pool2d_backward(dy: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of the spatial mean: ``dy / (H*W)`` broadcast over every pixel."""
    H, W = x_shape[2], x_shape[3]
    g = dy / (H * W)  # (N, C)
    return np.ascontiguousarray(np.broadcast_to(g[:, :, None, None], tuple(x_shape)))  # (N, C, H, W)
