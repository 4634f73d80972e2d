"""Which kernel tier runs: ``CNNLAB_KERNELS=auto|numpy|compiled`` (read on every call)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable

ENV = "CNNLAB_KERNELS"
CHOICES = ("auto", "numpy", "compiled")
_noticed: set[str] = set()
#: Called with a short text when a long pause of the kernels starts (the first-run compile)
#: and with None when it ends: a progress display shows it on its line.
_status_listeners: list[Callable[[str | None], None]] = []


def add_status_listener(listener: Callable[[str | None], None]) -> None:
    """Have ``listener(text)`` called when a long kernel pause starts (``text``) and ends (None)."""
    _status_listeners.append(listener)


def remove_status_listener(listener: Callable[[str | None], None]) -> None:
    if listener in _status_listeners:
        _status_listeners.remove(listener)


def status(text: str | None) -> None:
    """Tell the listeners (a progress bar) what the kernels are doing; None: done."""
    for listener in list(_status_listeners):
        listener(text)


def notice(message: str) -> None:
    """Print a one-line notice to stderr, once per distinct message."""
    if message not in _noticed:
        _noticed.add(message)
        print(f"cnnlab: {message}", file=sys.stderr, flush=True)


def compiled_available() -> bool:
    """True when numba (the ``fast`` extra) can be imported."""
    return importlib.util.find_spec("numba") is not None


def choice() -> str:
    """The user's choice: "auto", "numpy" or "compiled" (anything else: "numpy", with a notice)."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        notice(f"{ENV}={value!r} is not one of {', '.join(CHOICES)}; using the NumPy kernels")
        return "numpy"
    return value


def tier() -> str:
    """ "compiled" or "numpy": the tier the next convolution will use.

    Example:
        >>> tier() in ("numpy", "compiled")
        True
    """
    chosen = choice()
    if chosen == "numpy":
        return "numpy"
    if compiled_available():
        return "compiled"
    if chosen == "compiled":
        notice(f"{ENV}=compiled but numba is not installed (pip install 'cnnlab[fast]'); using NumPy")
    return "numpy"
