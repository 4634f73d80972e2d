"""First-use self-check: a compiled kernel runs only after it matched the NumPy path.

For every shape class (channels, kernel, stride, padding, dtype) the compiled forward and
backward run once on a tiny random case (batch 2, odd sizes) and are compared with
``cnnlab.functional.conv``. A mismatch or an error prints a one-line notice and sends that
class to the NumPy engine for the rest of the process. The first check of a process also
compiles the kernels (or loads them from the cache); a compile is announced and timed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cnnlab.functional.conv import conv2d_backward, conv2d_forward
from cnnlab.kernels import conv, conv_codegen, numba_env
from cnnlab.kernels.select import notice, status

_verdicts: dict[tuple[Any, ...], bool] = {}
#: Seconds the last first-run compile took (None: nothing compiled in this process).
last_compile_s: float | None = None


def _ensure_compiled(dtype: np.dtype) -> None:
    """Import / compile the kernels for ``dtype``; announce and time a compile."""
    global last_compile_s
    key = ("compiled", np.dtype(dtype).str)
    if key in _verdicts:
        return
    _verdicts[key] = True
    mod = conv_codegen.module()
    cached = conv_codegen.is_cached(mod)
    if not cached:
        where = numba_env.numba_cache_dir()
        notice(f"compiling the compiled kernel tier for {np.dtype(dtype)} (first run; cache: {where})")
        status(f"compiling the {np.dtype(dtype)} kernels (first run, ~10 s)")
    start = time.perf_counter()
    try:
        x = np.ones((1, 1, 3, 3), dtype)
        w = np.ones((1, 1, 3, 3), dtype)
        y, saved = conv.forward(x, w, None, (1, 1, 1, 1), (1, 1))
        conv.backward(np.ones_like(y), x, w, (1, 1, 1, 1), (1, 1), True, saved)
    finally:
        if not cached:
            status(None)
    elapsed = time.perf_counter() - start
    if not cached:
        last_compile_s = elapsed
        notice(f"compiled kernels for {np.dtype(dtype)} ready in {elapsed:.1f} s")


def _close(a: np.ndarray | None, b: np.ndarray | None, dtype: np.dtype) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b64).max(initial=0.0)))
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    return a64.shape == b64.shape and bool(np.all(np.abs(a64 - b64) <= tol * scale))


def verified(
    C_in: int, C_out: int, kernel: tuple[int, int], pads: conv.Pads, stride: tuple[int, int], dtype: Any
) -> bool:
    """True when the compiled kernels matched NumPy on a tiny case of this shape class."""
    dtype = np.dtype(dtype)
    key = (C_in, C_out, kernel, pads, stride, dtype.str)
    if key in _verdicts:
        return _verdicts[key]
    what = f"conv {C_in}->{C_out} kernel {kernel} stride {stride} pads {pads} {dtype}"
    try:
        _ensure_compiled(dtype)
        rng = np.random.default_rng(len(_verdicts))
        (KH, KW), (SH, SW) = kernel, stride
        x = rng.standard_normal((2, C_in, KH + 2 * SH + 1, KW + 2 * SW + 2)).astype(dtype)  # odd and even
        w = (rng.standard_normal((C_out, C_in, KH, KW)) / np.sqrt(C_in * KH * KW)).astype(dtype)
        b = rng.standard_normal(C_out).astype(dtype)
        y_ref = conv2d_forward(x, w, b, pads, stride)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        dx_ref, dW_ref, db_ref = conv2d_backward(dy, x, w, pads, stride)
        y, saved = conv.forward(x, w, b, pads, stride)
        dx, dW, db = conv.backward(dy, x, w, pads, stride, True, saved)
        ok = all(_close(a, r, dtype) for a, r in ((y, y_ref), (dx, dx_ref), (dW, dW_ref), (db, db_ref)))
        if not ok:
            notice(f"compiled {what} disagrees with the NumPy kernels; using NumPy for it")
    except Exception as err:  # any failure of the optional tier means: use NumPy
        notice(f"compiled {what} failed ({type(err).__name__}: {err}); using NumPy for it")
        ok = False
    _verdicts[key] = ok
    return ok
