"""Import numba with cnnlab's settings: cache directory, threading layer, SLP vectorizer.

- Cache: compiled kernels are cached in ``$XDG_CACHE_HOME/cnnlab/numba`` (default
  ``~/.cache/cnnlab/numba``) unless ``NUMBA_CACHE_DIR`` is set. A cached kernel loads in
  ~0.02 s instead of compiling for several seconds.
- Threads: numba's ``workqueue`` layer (unless ``NUMBA_THREADING_LAYER`` is set) sleeps when
  idle, so it does not spin against OpenBLAS's and torch's pools (issue 14: an OpenMP pool
  spinning beside them slowed the next GEMM 1.7x). workqueue must not be entered from two
  threads at once, so every compiled call holds ``LOCK``.
- SLP vectorizer: numba turns LLVM's SLP vectorizer off by default (after miscompilation
  reports); the generated kernels (scalar accumulators, one per output channel and pixel)
  need it to become vector FMAs (9x faster here). ``NUMBA_SLP_VECTORIZE=1`` is set unless the
  user set it; numba reads it when it first compiles, so it holds for every numba function
  of the process, and ``check.py`` compares cnnlab's kernels with NumPy before they run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

LOCK = threading.Lock()


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/cnnlab`` or ``~/.cache/cnnlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnlab"


def numba_cache_dir() -> Path:
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_root() / "numba")


def import_numba() -> Any:
    """numba, with cnnlab's settings where the user left them unset.

    The environment variables are read when numba is first imported; if something imported
    numba before cnnlab did, the same settings are made on ``numba.config`` (numba reads
    ``CACHE_DIR`` when a function is compiled and the threading layer when its first
    parallel function runs).
    """
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    # numba builds its LLVM pass managers once, when it first compiles: the SLP switch must be
    # set before that (setting it later, around our compiles, had no effect: 7.5 instead of
    # 67 GFLOP/s). It then applies to every numba function of the process.
    os.environ.setdefault("NUMBA_SLP_VECTORIZE", "1")
    import numba
    from numba.core import config

    if os.environ["NUMBA_SLP_VECTORIZE"] == "1":
        setattr(config, "SLP_VECTORIZE", 1)  # noqa: B010 (numba was imported before cnnlab)

    if not getattr(config, "CACHE_DIR", ""):
        setattr(config, "CACHE_DIR", os.environ["NUMBA_CACHE_DIR"])  # noqa: B010
    if getattr(config, "THREADING_LAYER", "default") == "default":
        setattr(config, "THREADING_LAYER", os.environ["NUMBA_THREADING_LAYER"])  # noqa: B010
    return numba
