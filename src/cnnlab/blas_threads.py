"""OpenBLAS's idle worker threads: make them sleep, even when NumPy was imported first.

After every matrix product, OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) waiting
for the next one. On a 2-core machine that spinning thread takes a core from everything
else cnnlab runs between products (copies, pooling, numba kernels): measured on the zoo
``resnet`` at batch 128 with NumPy imported first, a NumPy-engine train step took 145-167 ms
with the spinning workers and 125-135 ms without them; with the compiled kernels (``auto``)
148-176 and 114-117 ms (docs/performance.md, "OpenBLAS's spinning threads").

``OPENBLAS_THREAD_TIMEOUT=4`` (2^4 cycles) stops that, but OpenBLAS reads it only when it is
loaded, i.e. when NumPy is first imported. ``import cnnlab`` sets it before importing NumPy;
when a script imported NumPy first, ``apply_thread_timeout`` makes OpenBLAS re-read its
environment and shuts its workers down (OpenBLAS starts them again, with the new timeout, at
the next multi-threaded product). That is OpenBLAS's own ``openblas_read_env`` and
``blas_thread_shutdown_`` (what it runs around ``fork``). A value the user set is never changed.
Linux only (it finds the library in ``/proc/self/maps``); elsewhere, and for any BLAS that is
not OpenBLAS, nothing happens.
"""

from __future__ import annotations

import ctypes
import os

ENV = "OPENBLAS_THREAD_TIMEOUT"
#: What cnnlab sets (2^4 cycles: the workers sleep right after each product).
TIMEOUT = "4"


def loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS shared libraries loaded in this process (NumPy's, and e.g.
    SciPy's own copy when SciPy was imported), in load order; [] when none or not Linux."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                name = os.path.basename(path).lower()
                if "openblas" in name and ".so" in name and path not in paths:
                    paths.append(path)
    except OSError:
        return []
    return paths


def apply_thread_timeout() -> int:
    """Give every loaded OpenBLAS cnnlab's thread timeout; returns how many took it.

    Call only while no other thread runs a BLAS product (``import cnnlab`` does, once).
    """
    os.environ.setdefault(ENV, TIMEOUT)
    applied = 0
    for path in loaded_openblas():
        try:
            lib = ctypes.CDLL(path)
            read_env, shutdown = lib.openblas_read_env, lib.blas_thread_shutdown_
            current = lib.openblas_thread_timeout
        except (OSError, AttributeError):
            continue
        read_env()
        shutdown()
        applied += str(current()) == os.environ[ENV]
    return applied
