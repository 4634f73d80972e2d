"""Stateless 2-D convolution kernels (im2col + GEMM), forward and backward.

Forward:   y = weight (C_out, C_in*KH*KW) @ cols (C_in*KH*KW, N*H_out*W_out) + bias
Backward (chain rule through that product):
    [dW | db] = dy (C_out, N*H_out*W_out) @ [cols; ones].T: one GEMM; the row of ones under
         the columns makes its last column db, the sum of dy over batch and positions
    dcols = weight.T (C_in*KH*KW, C_out) @ dy; then for each kernel offset (i, j) its
         rows are added back at the input pixels that offset touched: KH*KW strided
         slice adds, clipped to the unpadded input (``col2im_into``; never ``np.add.at``)
    or, at stride 1 when C_out <= C_in, dx = dy (padded) convolved with the flipped filters
         (``dx_conv_pads``): the same sums, one GEMM with a longer inner axis, no col2im

Speed notes (a 2-core CPU, float32): all work is in BLAS GEMMs and a few whole-array
copies; the padded input and the column matrix live in a ``ConvWorkspace`` that is
reused between steps (reallocated only when shape or dtype change); the column matrix is
built with one ``sliding_window_view`` copy; channel-first (CNHW) buffers make the GEMM
output already in (C_out, N, H_out, W_out) order, so the NCHW result is a transposed view.
For dx, one GEMM into the (now free) column buffer followed by KH*KW strided adds measured
~25% faster than KH*KW per-offset GEMMs + adds (32->64 channels, 3x3, 128x14x14, 2 cores).
The dW product runs in the orientation OpenBLAS handles well (``weight_grad_gemm``:
``(cols @ dy.T).T``, ~20% faster, when the columns have at least C_out rows, else
``dy @ cols.T``). The copies and adds run on all cores (``split_channels``).
Measurements: docs/performance.md.

Forward -> backward: ``conv2d_forward_saving`` returns, beside y, a ``SavedConv`` (the input,
the geometry, and the column matrix when backward may reuse it) that
``conv2d_backward_saved`` takes: what backward needs is passed explicitly, one object per
call. The workspace holds only reusable buffers.

Memory: the column matrix is C_in*KH*KW times larger than the input. Above
``WORKSPACE_BUDGET_BYTES`` the batch is processed in chunks of samples; results equal the
unchunked ones (up to float summation order in ``dW``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.functional.im2col import col2im_into, im2col, out_size, pad_into
from cnnlab.utils import split_channels

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)

#: Bytes the per-chunk workspace (columns + padded input) of one call may use.
WORKSPACE_BUDGET_BYTES = 256 * 2**20


def set_workspace_budget(nbytes: int) -> int:
    """Set ``WORKSPACE_BUDGET_BYTES`` (bytes per conv call) and return the previous value."""
    global WORKSPACE_BUDGET_BYTES
    if int(nbytes) <= 0:
        raise ValueError(f"set_workspace_budget: nbytes must be positive. Received: nbytes={nbytes!r}")
    previous, WORKSPACE_BUDGET_BYTES = WORKSPACE_BUDGET_BYTES, int(nbytes)
    return previous


class ConvWorkspace:
    """Scratch buffers one conv layer reuses between steps (memory reuse only).

    Each buffer is keyed on its name and reallocated when a larger size or another dtype is
    asked for. A buffer's version counts the times it was handed out: a ``SavedConv`` that
    keeps forward's column matrix (a view of the "cols" buffer) records the version, and
    backward reuses the columns only if nobody has been handed the buffer since.
    """

    def __init__(self, shared: ConvWorkspace | None = None) -> None:
        self._buffers: dict[str, tuple[Any, np.ndarray]] = {}
        self._versions: dict[str, int] = {}
        # A workspace made by ``for_dx`` carves its column matrix from its parent's.
        self._shared = shared
        self._dx: ConvWorkspace | None = None

    def for_dx(self) -> ConvWorkspace:
        """The workspace of the backward pass's dx convolution: its own padded buffer (dy has
        C_out channels), but the same column matrix, which dW has finished with by then."""
        if self._dx is None:
            self._dx = ConvWorkspace(shared=self)
        return self._dx

    def flat(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialized C-contiguous array of ``shape``, carved from a reused buffer.

        Whatever was handed out of buffer ``name`` before is from now on scratch of the caller.
        """
        if self._shared is not None and name == "cols":
            return self._shared.flat(name, shape, dtype)
        size = int(np.prod(shape))
        _, buf = self._buffers.get(name, (None, np.empty(0, dtype)))
        if buf.dtype != dtype or buf.size < size:
            buf = np.empty(size, dtype)
            self._buffers[name] = (None, buf)
        self._versions[name] = self._versions.get(name, 0) + 1
        return buf[:size].reshape(shape)

    def version(self, name: str) -> int:
        """How many times buffer ``name`` was handed out by ``flat``."""
        if self._shared is not None and name == "cols":
            return self._shared.version(name)
        return self._versions.get(name, 0)

    def padded(self, shape: tuple[int, ...], pads: Pads, dtype: np.dtype) -> np.ndarray:
        """A CNHW buffer with a zero border of ``pads`` (only the interior is ever written)."""
        key = (shape, pads, dtype)
        old_key, buf = self._buffers.get("xp", (None, None))
        if buf is None or old_key != key:
            buf = np.zeros(shape, dtype)
            self._buffers["xp"] = (key, buf)
        return buf


@dataclass(eq=False)
class SavedConv:
    """What one ``conv2d_forward_saving`` call keeps for its ``conv2d_backward_saved``.

    Attributes:
        x: the input (N, C_in, H, W).
        pads, stride, dilation: the geometry of the call.
        workspace: the buffers of the call (backward uses them as scratch).
        cols: forward's column matrix, if backward may reuse it: for a 1x1 conv the input
            pixels it read (C_in, N*H_out*W_out); otherwise the workspace's column buffer
            (C_in*KH*KW + 1, N*H_out*W_out), kept only when one chunk held the whole batch.
            Backward consumes it (sets None): it writes dL/dcols over that memory.
        cols_version: the "cols" buffer's version after forward wrote it; if another call
            was handed the buffer since, backward recomputes the columns.
    """

    x: np.ndarray
    pads: Pads
    stride: Pair
    dilation: Pair
    workspace: ConvWorkspace
    cols: np.ndarray | None = None
    cols_version: int = -1

    def columns(self, rows: int, dtype: np.dtype) -> np.ndarray | None:
        """The kept column matrix if it is still intact, has ``rows`` rows and ``dtype``; else None."""
        cols = self.cols
        if cols is None or cols.dtype != dtype or cols.shape[0] != rows:
            return None
        if self.cols_version >= 0 and self.workspace.version("cols") != self.cols_version:
            return None  # the buffer was handed to another call since
        return cols


def chunk_size(C_in: int, kernel: Pair, in_hw: Pair, out_hw: Pair, itemsize: int) -> int:
    """Samples per chunk so that columns + padded input stay within the budget."""
    per_sample = (
        (C_in * kernel[0] * kernel[1] + 1) * out_hw[0] * out_hw[1] + C_in * in_hw[0] * in_hw[1]
    ) * itemsize
    return max(1, WORKSPACE_BUDGET_BYTES // max(per_sample, 1))


def _columns(
    x: np.ndarray,
    n0: int,
    n1: int,
    chunk: int,
    kernel: Pair,
    pads: Pads,
    stride: Pair,
    dilation: Pair,
    ws: ConvWorkspace,
    dtype: np.dtype,
) -> np.ndarray:
    """im2col of samples n0:n1 of NCHW ``x`` into the workspace: (C_in*KH*KW + 1, n*H_out*W_out).

    The last row is all ones: the bias is one more column of the weight matrix, so the
    forward GEMM adds it and the dW GEMM yields db (its sum over positions) for free,
    saving one pass over y and one over dy.
    """
    N, C_in, H, W = x.shape
    top, bottom, left, right = pads
    Hp, Wp = H + top + bottom, W + left + right
    n = n1 - n0
    if any(pads):
        # The buffer holds a full chunk; a shorter last chunk uses its first n samples.
        xp = ws.padded((C_in, min(chunk, N), Hp, Wp), pads, dtype)[:, :n]  # (C_in, n, Hp, Wp)
        pad_into(x[n0:n1], xp, pads)
    else:
        xp = x[n0:n1].transpose(1, 0, 2, 3)  # (C_in, n, H, W), a view: no padding to add
    H_out = out_size(Hp, 0, kernel[0], stride[0], dilation[0])
    W_out = out_size(Wp, 0, kernel[1], stride[1], dilation[1])
    KK = kernel[0] * kernel[1]
    cols = ws.flat("cols", (C_in * KK + 1, n * H_out * W_out), dtype)  # (C_in*KH*KW + 1, n*H_out*W_out)
    cols[-1] = 1  # the bias row
    split_channels(
        lambda c0, c1: im2col(xp[c0:c1], kernel, stride, dilation, cols[c0 * KK : c1 * KK]), C_in, cols.size
    )
    return cols


def weight_grad_gemm(dy2: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``dy2 @ cols.T``, (C_out, M) x (K, M) -> (C_out, K), in the orientation OpenBLAS handles well.

    The inner axis M (every position of every sample) is very long. ``(cols @ dy2.T).T``
    runs ~20% faster when K >= C_out (32 -> 64 channels, 3x3); but when the product's rows
    are fewer than its columns (K < C_out: a 1x1 conv or a 1-3 channel first layer), 2-thread
    OpenBLAS 0.3.31 on a busy 2-core machine took 0.45-1.8 s instead of 8 ms for it (a thread
    hand-off per block of the inner axis). So the product is always computed with at least
    as many rows as columns.
    """
    if cols.shape[0] >= dy2.shape[0]:
        return (cols @ dy2.T).T  # (C_out, K), a transposed view
    return dy2 @ cols.T  # (C_out, K)


def dx_conv_pads(
    C_in: int, C_out: int, kernel: Pair, pads: Pads, stride: Pair, dilation: Pair
) -> Pads | None:
    """Pads of a convolution that yields dx directly, or None when col2im is the faster way.

    With stride 1, dL/dx is dy zero-padded by ``dilation*(k-1) - pad`` on each side and
    convolved with the filters rotated by 180 degrees, C_in and C_out swapped. Its GEMM has
    an inner size of C_out*KH*KW instead of C_out (the columns' gradient, ``weight.T @ dy``),
    and its copy is an im2col of dy instead of KH*KW adds into dx. That is faster when
    C_out <= C_in: a 3x3 conv 32->32 channels on 64x28x28, forward + backward 43 -> 33 ms
    (2 cores); 32->64 channels on 64x14x14 it was slower, 12.6 -> 14.9 ms.

    Example:
        >>> dx_conv_pads(32, 32, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1))
        (1, 1, 1, 1)
        >>> dx_conv_pads(32, 64, (3, 3), (1, 1, 1, 1), (1, 1), (1, 1)) is None
        True
    """
    if stride != (1, 1) or C_out > C_in:
        return None
    full = (dilation[0] * (kernel[0] - 1),) * 2 + (dilation[1] * (kernel[1] - 1),) * 2
    top, bottom, left, right = (f - p for f, p in zip(full, pads, strict=True))
    return (top, bottom, left, right) if min(top, bottom, left, right) >= 0 else None


def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    workspace: ConvWorkspace | None = None,
) -> np.ndarray:
    """2-D cross-correlation (what deep learning calls convolution), NCHW.

    Computes in ``weight.dtype``. The result is a transposed view of a (C_out, N, ...)
    array; call ``np.ascontiguousarray`` if you need NCHW memory order.

    Args:
        x: input (N, C_in, H, W).
        weight: filters (C_out, C_in, KH, KW).
        bias: (C_out,) or None.
        pads: zero padding (top, bottom, left, right).
        stride, dilation: (along H, along W).
        workspace: buffers to reuse between calls (a fresh one when None).

    Returns:
        y (N, C_out, H_out, W_out), H_out = floor((H + top + bottom - DH*(KH-1) - 1) / SH) + 1.

    Example:
        >>> x = np.ones((1, 1, 5, 5), np.float32)
        >>> conv2d_forward(x, np.ones((1, 1, 3, 3), np.float32), None, (1, 1, 1, 1))[0, 0, 0]
        array([4., 6., 6., 6., 4.], dtype=float32)
    """
    return conv2d_forward_saving(x, weight, bias, pads, stride, dilation, workspace)[0]


def conv2d_forward_saving(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    workspace: ConvWorkspace | None = None,
) -> tuple[np.ndarray, SavedConv]:
    """``conv2d_forward`` that also returns what its backward needs: ``(y, saved)``.

    Pass ``saved`` to ``conv2d_backward_saved``; it reuses forward's column matrix when it
    is still intact.

    Example:
        >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
        >>> y, saved = conv2d_forward_saving(x, w, None)
        >>> dx, dW, db = conv2d_backward_saved(np.ones_like(y), saved, w)
        >>> dW[0, 0], db
        (array([[4., 4.],
               [4., 4.]]), array([4.]))
    """
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    ws = workspace if workspace is not None else ConvWorkspace()
    dtype = weight.dtype
    if KH == KW == 1 and not any(pads):
        return _conv1x1_forward(x, weight, bias, pads, stride, dilation, ws)
    H_out = out_size(H, pads[0] + pads[1], KH, stride[0], dilation[0])
    W_out = out_size(W, pads[2] + pads[3], KW, stride[1], dilation[1])
    in_hw = (H + pads[0] + pads[1], W + pads[2] + pads[3])
    chunk = chunk_size(C_in, (KH, KW), in_hw, (H_out, W_out), dtype.itemsize)
    b = np.zeros(C_out, dtype) if bias is None else bias.astype(dtype, copy=False)
    w2b = np.concatenate(
        [weight.reshape(C_out, C_in * KH * KW), b[:, None]], axis=1
    )  # (C_out, C_in*KH*KW + 1)
    y = np.empty((C_out, N, H_out, W_out), dtype)  # (C_out, N, H_out, W_out)
    cols = None
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        cols = _columns(x, n0, n1, chunk, (KH, KW), pads, stride, dilation, ws, dtype)
        # y = weight @ cols + bias, as one product with the ones row of cols.
        np.matmul(w2b, cols, out=y[:, n0:n1].reshape(C_out, (n1 - n0) * H_out * W_out))
    saved = SavedConv(x, pads, stride, dilation, ws)
    if chunk >= N:  # backward may reuse the columns only if they hold the whole batch
        saved.cols, saved.cols_version = cols, ws.version("cols")
    return y.transpose(1, 0, 2, 3), saved  # (N, C_out, H_out, W_out), a view


def conv2d_backward(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads = (0, 0, 0, 0),
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    need_dx: bool = True,
    workspace: ConvWorkspace | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``conv2d_forward`` given dL/dy: returns (dx or None, dW, db).

    Builds the column matrix again; ``conv2d_backward_saved`` reuses forward's.

    Example:
        >>> x, w = np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
        >>> dx, dW, db = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
        >>> dx[0, 0]  # how many windows covered each input pixel
        array([[1., 2., 1.],
               [2., 4., 2.],
               [1., 2., 1.]])
        >>> dW[0, 0], db
        (array([[4., 4.],
               [4., 4.]]), array([4.]))
    """
    ws = workspace if workspace is not None else ConvWorkspace()
    return conv2d_backward_saved(dy, SavedConv(x, pads, stride, dilation, ws), weight, need_dx)


def conv2d_backward_saved(
    dy: np.ndarray, saved: SavedConv, weight: np.ndarray, need_dx: bool = True
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of the ``conv2d_forward_saving`` call that returned ``saved``: (dx or None, dW, db)."""
    x, pads, stride, dilation, ws = saved.x, saved.pads, saved.stride, saved.dilation, saved.workspace
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    top, bottom, left, right = pads
    dtype = weight.dtype
    if KH == KW == 1 and not any(pads):
        return _conv1x1_backward(dy, saved, weight, need_dx)
    _, _, H_out, W_out = dy.shape
    Hp, Wp = H + top + bottom, W + left + right
    chunk = chunk_size(C_in, (KH, KW), (Hp, Wp), (H_out, W_out), dtype.itemsize)
    dy_t = dy.transpose(1, 0, 2, 3)  # (C_out, N, H_out, W_out); free if dy came from forward
    kept = saved.columns(C_in * KH * KW + 1, dtype)  # forward's columns, if still intact
    saved.cols = None  # consumed: dL/dcols is written over them

    K = C_in * KH * KW
    dWb = np.zeros((C_out, K + 1), dtype) if N == 0 else None  # (C_out, C_in*KH*KW + 1): [dW | db]
    dx_pads = dx_conv_pads(C_in, C_out, (KH, KW), pads, stride, dilation) if need_dx else None
    dxc = np.empty((C_in, N, H, W), dtype) if need_dx and dx_pads is None else None  # (C_in, N, H, W)
    w2 = weight.reshape(C_out, C_in * KH * KW)  # (C_out, C_in*KH*KW)
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        m = (n1 - n0) * H_out * W_out
        dy2 = np.ascontiguousarray(dy_t[:, n0:n1], dtype=dtype).reshape(C_out, m)  # (C_out, n*H_out*W_out)
        if kept is not None and kept.shape[1] == m:  # one chunk: the whole batch
            cols = kept
        else:
            cols = _columns(x, n0, n1, chunk, (KH, KW), pads, stride, dilation, ws, dtype)
        # Weight sharing: one filter is applied at every position of every sample, so its
        # gradient is the SUM over all of them; the product's inner axis, n*H_out*W_out, is that sum.
        # Its last column, from the ones row, is db: the sum of dy over positions.
        part = weight_grad_gemm(dy2, cols)  # (C_out, C_in*KH*KW + 1)
        dWb = part if dWb is None else dWb + part
        if dxc is None:
            continue
        # dL/dcols = weight.T @ dy, written over the columns (dW no longer needs them).
        dcols = np.matmul(w2.T, dy2, out=cols[:K])  # (C_in*KH*KW, n*H_out*W_out)
        dcols6 = dcols.reshape(C_in, KH, KW, n1 - n0, H_out, W_out)  # (C_in, KH, KW, n, H_out, W_out)

        def add_back(c0: int, c1: int, dxc: np.ndarray = dxc, d6: np.ndarray = dcols6, n0: int = n0) -> None:
            col2im_into(dxc[c0:c1, n0 : n0 + d6.shape[3]], d6[c0:c1], pads, stride, dilation)

        split_channels(add_back, C_in, dcols.size)
    dx = None if dxc is None else dxc.transpose(1, 0, 2, 3)  # (N, C_in, H, W), a view of CNHW memory
    if dx_pads is not None:
        # dx = dy (zero-padded) convolved with the flipped filters, C_in and C_out swapped.
        flipped = weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, KH, KW)
        flipped = np.ascontiguousarray(flipped)
        dx = conv2d_forward(dy, flipped, None, dx_pads, (1, 1), dilation, ws.for_dx())  # (N, C_in, H, W)
    assert dWb is not None
    dW = np.ascontiguousarray(dWb[:, :K]).reshape(weight.shape)  # (C_out, C_in, KH, KW)
    return dx, dW, np.ascontiguousarray(dWb[:, K])  # db: (C_out,)


def _columns_1x1(x: np.ndarray, stride: Pair, dtype: np.dtype) -> np.ndarray:
    """The column matrix of a 1x1 conv without padding: the input pixels it reads, channel-first.

    (C_in, N*H_out*W_out). No im2col: for stride 1 and a conv's CNHW output this is a free
    view; otherwise one copy (of the strided pixels only).
    """
    C_in = x.shape[1]
    xs = x[:, :, :: stride[0], :: stride[1]]  # (N, C_in, H_out, W_out), a view
    return xs.transpose(1, 0, 2, 3).astype(dtype, copy=False).reshape(C_in, -1)  # (C_in, N*H_out*W_out)


def _conv1x1_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads,
    stride: Pair,
    dilation: Pair,
    ws: ConvWorkspace,
) -> tuple[np.ndarray, SavedConv]:
    """``conv2d_forward_saving`` for a 1x1 kernel without padding: one GEMM (dilation has no effect)."""
    N, C_in, H, W = x.shape
    C_out = weight.shape[0]
    H_out, W_out = out_size(H, 0, 1, stride[0], 1), out_size(W, 0, 1, stride[1], 1)
    cols = _columns_1x1(x, stride, weight.dtype)  # (C_in, N*H_out*W_out)
    y = np.empty((C_out, N, H_out, W_out), weight.dtype)  # (C_out, N, H_out, W_out)
    np.matmul(weight.reshape(C_out, C_in), cols, out=y.reshape(C_out, -1))
    if bias is not None:
        y += bias.astype(weight.dtype, copy=False)[:, None, None, None]
    saved = SavedConv(x, pads, stride, dilation, ws, cols)  # the columns are not a workspace buffer
    return y.transpose(1, 0, 2, 3), saved  # (N, C_out, H_out, W_out), a view


def _conv1x1_backward(
    dy: np.ndarray, saved: SavedConv, weight: np.ndarray, need_dx: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``conv2d_backward_saved`` for a 1x1 kernel without padding: two GEMMs and a sum."""
    x, stride = saved.x, saved.stride
    N, C_in, H, W = x.shape
    C_out = weight.shape[0]
    dtype = weight.dtype
    _, _, H_out, W_out = dy.shape
    cols = saved.columns(C_in, dtype)
    if cols is None:
        cols = _columns_1x1(x, stride, dtype)  # (C_in, N*H_out*W_out)
    saved.cols = None  # released after backward (a strided copy is as large as the output)
    dy2 = np.ascontiguousarray(dy.transpose(1, 0, 2, 3), dtype=dtype).reshape(
        C_out, -1
    )  # (C_out, N*H_out*W_out)
    dW = weight_grad_gemm(dy2, cols).reshape(weight.shape)  # (C_out, C_in, 1, 1): sum over all positions
    db = dy2.sum(axis=1)  # (C_out,)
    if not need_dx:
        return None, np.ascontiguousarray(dW), db
    dcols = weight.reshape(C_out, C_in).T @ dy2  # (C_in, N*H_out*W_out)
    if stride == (1, 1):
        dxc = dcols.reshape(C_in, N, H, W)  # (C_in, N, H, W)
    else:  # only the pixels the strided kernel read get gradient
        dxc = np.zeros((C_in, N, H, W), dtype)  # (C_in, N, H, W)
        dxc[:, :, :: stride[0], :: stride[1]] = dcols.reshape(C_in, N, H_out, W_out)
    return dxc.transpose(1, 0, 2, 3), np.ascontiguousarray(dW), db  # dx: (N, C_in, H, W), a view
