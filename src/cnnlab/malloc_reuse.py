"""Freed memory kept for the next train step: glibc's malloc told not to hand it back.

A NumPy train step allocates its activations and gradients afresh (a few MB each, ~30 per
``resnet`` step at batch 128) and frees them at the end of the step. glibc's malloc serves
such blocks with ``mmap`` or returns the freed top of its heap to the system (``trim``), so
the next step's arrays are new pages: every page is faulted in and zeroed by the kernel.
Measured on the zoo ``resnet`` at batch 128 (idle 2-core machine): 1,760-1,820 page faults
and 10-13 ms of system time per step, against ~50 faults and 2-6 ms with the memory kept
(docs/performance.md, "Round 3").

``import cnnlab`` therefore raises two of glibc's thresholds (``mallopt``):

- ``M_MMAP_THRESHOLD`` to 256 MiB: blocks below it come from the heap, where a freed block
  is reused by the next request of its size instead of being unmapped;
- ``M_TRIM_THRESHOLD`` to 1 GiB: up to 1 GiB of free memory at the top of the heap stays
  with the process (peak memory did not grow in the benchmarks; memory freed after
  training is kept for reuse rather than returned, up to that bound).

PyTorch's and NumPy's own arrays share the same malloc, so both benefit. Nothing is changed
when ``CNNLAB_KEEP_FREED_MEMORY`` is ``0``, ``false``, ``no`` or ``off`` (glibc's own
adaptive thresholds stay), or when the user tuned malloc through glibc's environment
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
``MALLOC_MMAP_MAX_`` or ``glibc.malloc.*`` in ``GLIBC_TUNABLES``): those settings are kept
exactly. Linux with glibc only; elsewhere nothing happens.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: What cnnlab sets.
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
#: ``CNNLAB_KEEP_FREED_MEMORY=0`` (or false, no, off) leaves malloc alone.
OPT_OUT = "CNNLAB_KEEP_FREED_MEMORY"
#: glibc's environment variables for the same settings: if the user set any, cnnlab does not touch malloc.
USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

#: Whether ``import cnnlab`` changed the thresholds (``cnnlab bench`` prints it).
applied = False


def user_tuned_malloc() -> bool:
    """True when the environment tunes glibc's malloc (``MALLOC_*_`` or ``glibc.malloc.*``)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in USER_ENV) or "glibc.malloc" in tunables


def keep_freed_memory() -> bool:
    """Set cnnlab's malloc thresholds; True if glibc took both, False if nothing was changed
    (not glibc, ``CNNLAB_KEEP_FREED_MEMORY=0``, or the user tuned malloc in the environment)."""
    global applied
    opted_out = os.environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off")
    if not sys.platform.startswith("linux") or opted_out or user_tuned_malloc():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has mallopt as a no-op  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mmap_ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    applied = mmap_ok and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return applied
