"""``tune_process()``: the two process settings that make NumPy training faster, made explicitly.

``import cnnlab`` changes nothing in the process. The CLI (``cnnlab train``, ``tune``, ``bench``)
and the NumPy engine (``cnnlab.fit``, when it begins training) call ``tune_process()``, which
makes two settings, each only where the user has not made it already:

- **OpenBLAS's idle workers sleep.** After every matrix product, OpenBLAS's worker threads spin
  for 2^28 cycles (~0.1 s) waiting for the next one. On a 2-core machine that spinning thread
  takes a core from everything else a train step runs between products (copies, pooling):
  measured on the zoo ``resnet`` at batch 128, a NumPy-engine train step took 145-167 ms with
  the spinning workers and 125-135 ms without them (docs/performance.md, "OpenBLAS's spinning
  threads"). ``OPENBLAS_THREAD_TIMEOUT=4`` (2^4 cycles) stops that. OpenBLAS reads it when it is
  loaded, so ``tune_process`` puts it into the environment (child processes inherit it) and
  makes each loaded OpenBLAS re-read it and shut its workers down (OpenBLAS's own
  ``openblas_read_env`` and ``blas_thread_shutdown_``, what it runs around ``fork``; the
  workers start again, with the new timeout, at the next multi-threaded product). Linux only
  (the libraries are found in ``/proc/self/maps``); any other BLAS is left alone. A timeout
  the user set (``OPENBLAS_THREAD_TIMEOUT`` in the environment) is kept.
- **Freed memory is kept for the next train step.** A step allocates its activations and
  gradients afresh (a few MB each) and frees them at its end; glibc's malloc serves such
  blocks with ``mmap`` or returns the freed top of its heap to the system, so the next step's
  arrays are new pages, each faulted in and zeroed: 1,760-1,820 page faults and 10-13 ms of
  system time per ``resnet`` step at batch 128, against ~50 faults and 2-6 ms with the memory
  kept (docs/performance.md, "Round 3"). ``tune_process`` raises glibc's ``M_MMAP_THRESHOLD``
  to 256 MiB (smaller blocks come from the heap and are reused) and ``M_TRIM_THRESHOLD`` to
  1 GiB (up to 1 GiB of free heap stays with the process) with ``mallopt``. glibc only; left
  alone when the user tunes malloc in the environment (``MALLOC_MMAP_THRESHOLD_``,
  ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_`` or ``glibc.malloc.*`` in
  ``GLIBC_TUNABLES``).

Turn both off with ``CNNLAB_TUNE_PROCESS=0`` (or false, no, off) in the environment, or call
``tune_process(enabled=False)``. Call it while no other thread runs a BLAS product (at the
start of a program or of training); a second call changes nothing more.

Example:
    >>> from cnnlab.process import tune_process
    >>> tuning = tune_process(enabled=False)
    >>> tuning.changes()
    []
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

#: ``CNNLAB_TUNE_PROCESS=0`` (or false, no, off): ``tune_process`` changes nothing.
OPT_OUT = "CNNLAB_TUNE_PROCESS"
#: OpenBLAS's environment variable, and what cnnlab sets (2^4 cycles: workers sleep right after a product).
TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"
TIMEOUT = "4"
#: ``mallopt`` parameter numbers from glibc's <malloc.h>, and what cnnlab sets.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
#: glibc's environment variables for the same settings: if the user set any, malloc is left alone.
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


@dataclass(frozen=True)
class Tuning:
    """What one ``tune_process`` call changed.

    Attributes:
        thread_timeout: the ``OPENBLAS_THREAD_TIMEOUT`` it set, or None (left alone).
        openblas_libraries: loaded OpenBLAS libraries that took the timeout.
        malloc: True when glibc took both malloc thresholds.
    """

    thread_timeout: str | None = None
    openblas_libraries: int = 0
    malloc: bool = False

    def changes(self) -> list[str]:
        """The changes in words (empty: nothing was changed).

        Example:
            >>> Tuning("4", 1, True).changes()
            ['OPENBLAS_THREAD_TIMEOUT=4 (1 OpenBLAS re-read it)', 'malloc keeps freed memory (mallopt)']
        """
        done = []
        if self.thread_timeout is not None:
            reread = f"{self.openblas_libraries} OpenBLAS re-read it"
            done.append(f"{TIMEOUT_ENV}={self.thread_timeout} ({reread})")
        if self.malloc:
            done.append("malloc keeps freed memory (mallopt)")
        return done


#: What this process has been given so far (the settings are process-wide; a second call is a no-op).
_applied = {"timeout": False, "malloc": False}


def opted_out() -> bool:
    """True when ``CNNLAB_TUNE_PROCESS`` is 0, false, no or off (any case, spaces ignored)."""
    return os.environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off")


def tune_process(enabled: bool | None = None) -> Tuning:
    """Make OpenBLAS's idle workers sleep and glibc's malloc keep freed memory (module docstring).

    Args:
        enabled: False changes nothing; None (default) changes nothing when
            ``CNNLAB_TUNE_PROCESS`` is 0/false/no/off, else tunes.

    Returns:
        What this call changed (settings the user made, and those an earlier call made, are
        not changed again).
    """
    if enabled is False or (enabled is None and opted_out()) or not sys.platform.startswith("linux"):
        return Tuning()
    timeout, libraries = None, 0
    if not _applied["timeout"] and TIMEOUT_ENV not in os.environ:
        os.environ[TIMEOUT_ENV] = TIMEOUT
        timeout, libraries = TIMEOUT, _reread_openblas_env()
        _applied["timeout"] = True
    malloc = False
    if not _applied["malloc"] and not user_tuned_malloc():
        malloc = _apply_mallopt()
        _applied["malloc"] = malloc
    return Tuning(timeout, libraries, malloc)


def tuned() -> dict[str, bool]:
    """Whether this process has had each setting made: {"thread_timeout": ..., "malloc": ...}."""
    return {"thread_timeout": _applied["timeout"], "malloc": _applied["malloc"]}


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


def _reread_openblas_env() -> int:
    """Each loaded OpenBLAS re-reads its environment and stops its workers; how many took the timeout."""
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
        applied += str(current()) == os.environ[TIMEOUT_ENV]
    return applied


def user_tuned_malloc() -> bool:
    """True when the environment tunes glibc's malloc (``MALLOC_*_`` or ``glibc.malloc.*``)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in os.environ for name in MALLOC_ENV) or "glibc.malloc" in tunables


def _apply_mallopt() -> bool:
    """Set cnnlab's two malloc thresholds; True if glibc took both (False: not glibc)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has mallopt as a no-op  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mmap_ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return mmap_ok and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
