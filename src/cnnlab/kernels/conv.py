"""Compiled 2-D convolution: a flat, phase-split layout and one generated kernel.

Layout. The padded input of each channel is split into ``SH*SW`` phase planes (the pixels
whose padded row is ``r`` with ``r % SH == a`` and column ``c % SW == b``); the planes of all
samples are laid end to end in one flat row per (channel, phase): ``xf[ci, phase, n*L + i*Wpl + j]``
with ``L = Hpl*Wpl``. In this layout a stride-``S`` convolution becomes a sum of stride-1 shifts:
output pixel ``q = n*L + oh*Wpl + ow`` reads, for tap (kh, kw),
``xf[ci, (kh % SH)*SW + kw % SW, q + (kh // SH)*Wpl + kw // SW]``, so the kernel's inner loads are
contiguous for every stride and no im2col matrix is written. The kernel computes every q up to
a multiple of its block, including the few positions outside the valid H_out x W_out
window (padding columns, the end of a plane), which ``unpack`` drops.

Gradients (the same chain rule as ``functional/conv.py``):
    db = sum of dy over batch and positions
    dW[:, :, kh, kw] = sum over q of dyf[:, q] xf[:, phase, q + off], a generated reduction,
        with dy placed at the output positions q of the flat layout and zeros elsewhere
        (the zeros make the invalid positions contribute nothing)
    dx[ci, phase, r] = sum over co and the taps t of that phase of
        w[co, ci, t] * dyf[co, r - offs[t]]: each input position gets back what every output
        that read it received, in the input's own flat layout. dy is stored with a leading
        margin of max(offs) zeros, so this is the same generated kernel run once per phase
        plane with offsets margin - offs[t]; ``gather`` then reads the unpadded pixels back.
        At stride 2 that is 1/4 of the multiply-adds of a correlation of dy dilated with
        zeros (the rule the NumPy engine's ``dx_conv_pads`` uses at stride 1 only).

Buffers: the packed input, dy's flat copy, the dx planes and the dW partial sums are kept
per layer (``Buffers``) and reused while the shapes stay the same: allocating them fresh
each step cost page faults on every call (a zeroed 8 MB buffer per call).

Supported: kernels larger than 1x1, any stride, padding <= kernel-1 on each side, no
dilation, float32 / float64, any batch, size and channel count (channels are padded to the
block with zero filters, pixels to the block with zero input). The NumPy engine does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.functional.im2col import out_size
from cnnlab.kernels import conv_codegen, numba_env

Pair = tuple[int, int]
Pads = tuple[int, int, int, int]

#: Positions per partial sum of the weight gradient (a multiple of the kernel's block P):
#: at most DW_CHUNK, and small enough for at least DW_MIN_CHUNKS partial sums, so the
#: threads get even shares (64 -> 64 channels at 8x8, batch 128: 7 chunks of 2048 split 4:3
#: between 2 threads). The split depends on the shape only, never on the thread count.
DW_CHUNK = 2048
DW_MIN_CHUNKS = 16


def dw_chunk(NLp: int) -> int:
    """Positions per weight-gradient partial sum for a flat layout of ``NLp`` positions.

    Example:
        >>> dw_chunk(128 * 34 * 34), dw_chunk(128 * 100), dw_chunk(64)
        (2048, 800, 32)
    """
    P = conv_codegen.P
    return min(DW_CHUNK, max(P, -(-NLp // (DW_MIN_CHUNKS * P)) * P))


def supported(
    x_shape: tuple[int, ...], kernel: Pair, pads: Pads, stride: Pair, dilation: Pair, dtype: np.dtype
) -> bool:
    """True when the compiled kernels cover this convolution."""
    KH, KW = kernel
    return (
        len(x_shape) == 4
        and x_shape[0] > 0
        and KH * KW > 1
        and dilation == (1, 1)
        and np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
        and max(pads[0], pads[1]) <= KH - 1
        and max(pads[2], pads[3]) <= KW - 1
        and x_shape[2] + pads[0] + pads[1] >= KH
        and x_shape[3] + pads[2] + pads[3] >= KW
    )


@dataclass(frozen=True)
class Plan:
    """Where everything lives in the flat layout of one convolution's input."""

    N: int
    H_out: int
    W_out: int
    Wpl: int  # width of a phase plane
    L: int  # one sample's phase plane, Hpl*Wpl
    phases: int  # SH*SW
    offs: np.ndarray  # (T,) flat offset of each tap
    phs: np.ndarray  # (T,) phase plane of each tap
    NLp: int  # positions computed: N*L rounded up to the block
    length: int  # length of one flat row of the packed input

    def key(self) -> tuple[object, ...]:
        """A hashable summary (the arrays as tuples): equal keys, equal layouts."""
        return (
            self.N,
            self.H_out,
            self.W_out,
            self.Wpl,
            self.L,
            self.phases,
            self.NLp,
            self.length,
            tuple(self.offs.tolist()),
            tuple(self.phs.tolist()),
        )

    @staticmethod
    def make(N: int, H: int, W: int, kernel: Pair, pads: Pads, stride: Pair) -> Plan:
        (KH, KW), (SH, SW) = kernel, stride
        Hp, Wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
        Hpl, Wpl = -(-Hp // SH), -(-Wp // SW)  # ceil
        taps = [(kh, kw) for kh in range(KH) for kw in range(KW)]
        offs = np.array([(kh // SH) * Wpl + kw // SW for kh, kw in taps], np.int64)
        phs = np.array([(kh % SH) * SW + kw % SW for kh, kw in taps], np.int64)
        L = Hpl * Wpl
        P = conv_codegen.P
        NLp = -(-N * L // P) * P
        return Plan(
            N=N,
            H_out=out_size(H, pads[0] + pads[1], KH, SH, 1),
            W_out=out_size(W, pads[2] + pads[3], KW, SW, 1),
            Wpl=Wpl,
            L=L,
            phases=SH * SW,
            offs=offs,
            phs=phs,
            NLp=NLp,
            # The kernel reads q + off for q < NLp: the row must reach NLp + the largest offset.
            length=NLp + int(offs.max()),
        )


class Buffers:
    """Arrays one conv layer reuses between steps; a zeroed buffer is zeroed once and then
    only its written positions change (the same positions while its ``key`` is the same)."""

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[object, np.ndarray]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype, key: object, zero: bool) -> np.ndarray:
        """The buffer ``name`` of this shape and dtype (new, and zeroed if ``zero``, when the
        shape, dtype or ``key`` changed)."""
        full_key = (tuple(shape), np.dtype(dtype).str, key)
        old = self._arrays.get(name)
        if old is not None and old[0] == full_key:
            return old[1]
        arr = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        self._arrays[name] = (full_key, arr)
        return arr


def _buffer(
    bufs: Buffers | None, name: str, shape: tuple[int, ...], dtype: np.dtype, key: object, zero: bool
) -> np.ndarray:
    if bufs is None:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    return bufs.get(name, shape, dtype, key, zero)


@dataclass
class Saved:
    """What forward keeps for backward: the packed input and its plan."""

    xf: np.ndarray  # (C_in, SH*SW, length)
    plan: Plan


def _pack(
    x: np.ndarray,
    plan: Plan,
    pads_tl: Pair,
    stride: Pair,
    dtype: np.dtype,
    bufs: Buffers | None = None,
) -> np.ndarray:
    """Scatter NCHW ``x`` into a flat phase-split buffer (C, SH*SW, length), zero elsewhere."""
    mod = conv_codegen.module()
    C = x.shape[1]
    key = (plan.key(), pads_tl, stride, x.shape)
    xf = _buffer(bufs, "xf", (C, plan.phases, plan.length), dtype, key, zero=True)  # (C, SH*SW, length)
    mod.pack(
        x.astype(dtype, copy=False),
        xf,
        pads_tl[0],
        pads_tl[1],
        stride[0],
        stride[1],
        plan.Wpl,
        plan.L,
    )
    return xf


def _run(
    xf: np.ndarray, wt: np.ndarray, plan: Plan, C_out: int, bias: np.ndarray, bufs: Buffers | None = None
) -> np.ndarray:
    """The generated kernel, then unpack into a (C_out, N, H_out, W_out) array."""
    mod = conv_codegen.module()
    COB = conv_codegen.COB
    C_outp = wt.shape[2]
    assert C_outp % COB == 0 and plan.NLp % conv_codegen.P == 0
    assert xf.shape[2] >= plan.NLp + int(plan.offs.max()), "a read would leave the packed input"
    yf = _buffer(bufs, "yf", (C_outp, plan.NLp), xf.dtype, None, zero=False)  # (C_out padded, N*L padded)
    mod.conv_flat(xf, wt, plan.offs, plan.phs, yf, np.zeros(1, xf.dtype))
    y = np.empty((C_out, plan.N, plan.H_out, plan.W_out), xf.dtype)  # (C_out, N, H_out, W_out)
    mod.unpack(yf, y, plan.Wpl, plan.L, bias)
    return y


def _weights_for_kernel(w: np.ndarray) -> np.ndarray:
    """(C_out, C_in, KH, KW) -> (C_in, KH*KW, C_out rounded up to the block), zero filters added."""
    C_out, C_in, KH, KW = w.shape
    C_outp = -(-C_out // conv_codegen.COB) * conv_codegen.COB
    wt = np.zeros((C_in, KH * KW, C_outp), w.dtype)  # (C_in, KH*KW, C_out padded)
    wt[:, :, :C_out] = w.reshape(C_out, C_in, KH * KW).transpose(1, 2, 0)
    return wt


def forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    pads: Pads,
    stride: Pair,
    bufs: Buffers | None = None,
) -> tuple[np.ndarray, Saved]:
    """Compiled ``conv2d_forward``: y (N, C_out, H_out, W_out) as an NCHW view of CNHW memory."""
    N, _, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    dtype = weight.dtype
    plan = Plan.make(N, H, W, (KH, KW), pads, stride)
    b = np.zeros(C_out, dtype) if bias is None else bias.astype(dtype, copy=False)
    with numba_env.LOCK:
        xf = _pack(x, plan, (pads[0], pads[2]), stride, dtype, bufs)  # (C_in, SH*SW, length)
        y = _run(xf, _weights_for_kernel(weight), plan, C_out, b, bufs)  # (C_out, N, H_out, W_out)
    return y.transpose(1, 0, 2, 3), Saved(xf, plan)  # (N, C_out, H_out, W_out), a view


def _dx(
    dyf: np.ndarray,
    margin: int,
    weight: np.ndarray,
    plan: Plan,
    x_shape: tuple[int, ...],
    pads: Pads,
    stride: Pair,
    bufs: Buffers | None,
) -> np.ndarray:
    """dx (C_in, N, H, W) from dy in the input's flat layout (``dyf``: dy at margin + q)."""
    mod = conv_codegen.module()
    COB = conv_codegen.COB
    N, C_in, H, W = x_shape
    C_out, _, KH, KW = weight.shape
    C_outp, C_inp = dyf.shape[0], -(-C_in // COB) * COB
    T = KH * KW
    # wt[co, t, ci] = weight[co, ci, t]: dy's channels are this kernel's inputs.
    wt = np.zeros((C_outp, T, C_inp), weight.dtype)  # (C_out padded, KH*KW, C_in padded)
    wt[:C_out, :, :C_in] = weight.reshape(C_out, C_in, T).transpose(0, 2, 1)
    dxf = _buffer(bufs, "dxf", (plan.phases, C_inp, plan.NLp), dyf.dtype, None, zero=False)
    zero = np.zeros(1, dyf.dtype)
    for phase in range(plan.phases):
        taps = np.flatnonzero(plan.phs == phase)
        if taps.size == 0:  # no tap reads this phase plane (e.g. a 1-wide kernel at stride 2)
            dxf[phase] = 0
            continue
        offs = margin - plan.offs[taps]  # (taps,) all >= 0
        assert dyf.shape[2] >= plan.NLp + int(offs.max()), "a read would leave dy's buffer"
        w_phase = np.ascontiguousarray(wt[:, taps])  # (C_out padded, taps, C_in padded)
        mod.conv_flat(dyf, w_phase, offs, np.zeros_like(offs), dxf[phase], zero)
    dxc = np.empty((C_in, N, H, W), dyf.dtype)  # (C_in, N, H, W)
    mod.gather(dxf, dxc, pads[0], pads[2], stride[0], stride[1], plan.Wpl, plan.L)
    return dxc


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    pads: Pads,
    stride: Pair,
    need_dx: bool,
    saved: Saved | None,
    bufs: Buffers | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Compiled ``conv2d_backward``: (dx or None, dW, db)."""
    N, C_in, H, W = x.shape
    C_out, _, KH, KW = weight.shape
    dtype = weight.dtype
    with numba_env.LOCK:
        if saved is None or saved.xf.dtype != dtype:
            plan = Plan.make(N, H, W, (KH, KW), pads, stride)
            saved = Saved(_pack(x, plan, (pads[0], pads[2]), stride, dtype, bufs), plan)
        plan, xf = saved.plan, saved.xf
        COB = conv_codegen.COB
        C_outp = -(-C_out // COB) * COB
        # dy at the output positions q of the input's flat layout, after a margin of
        # max(offs) zeros (for dx), zeros elsewhere and in the padding channels of the block.
        margin = int(plan.offs.max())
        dyf = _buffer(bufs, "dyf", (C_outp, 1, margin + plan.NLp), dtype, (plan.key(), dy.shape), zero=True)
        mod = conv_codegen.module()
        mod.pack(dy.astype(dtype, copy=False), dyf, 0, margin, 1, 1, plan.Wpl, plan.L)
        dyf2 = dyf[:, 0]  # (C_out padded, margin + N*L padded)
        # Weight sharing: each tap's gradient sums over every position of every sample.
        Qc = dw_chunk(plan.NLp)
        chunks = -(-plan.NLp // Qc)
        part = _buffer(bufs, "part", (chunks, C_outp, C_in, KH * KW), dtype, None, zero=False)
        mod.dw_flat(dyf2, margin, plan.NLp, xf, plan.offs, plan.phs, part, np.zeros(1, dtype), Qc)
        dW = part.sum(axis=0)[:C_out]  # (C_out, C_in, KH*KW)
        db = dyf2[:C_out].sum(axis=1)  # (C_out,)
        if not need_dx:
            return None, dW.reshape(weight.shape), db
        dxc = _dx(dyf, margin, weight, plan, x.shape, pads, stride, bufs)  # (C_in, N, H, W)
    return dxc.transpose(1, 0, 2, 3), dW.reshape(weight.shape), db  # dx: (N, C_in, H, W), a view
