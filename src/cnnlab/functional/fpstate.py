"""The engine's floating-point error state: overflow and NaN become values, not warnings.

NumPy's default is to *warn* on overflow, invalid operations (``inf - inf``, ``0 * inf``)
and division by zero. In a network these happen only when training diverges; the training
loop then sees a non-finite or exploding loss and stops with one clear message and advice.
A ``RuntimeWarning`` with a source line from every layer that touched the overflowing
values (matmul, BatchNorm, softmax, the optimizer) would only bury that message, so the
engine computes under ``quiet_fp``: each ``warn`` becomes ``ignore`` (as in PyTorch, an
overflow is an ``inf`` in the result). A stricter choice of the caller is kept:
``with np.errstate(over="raise"): layer.forward(x)`` still raises ``FloatingPointError``.

NumPy keeps this state per thread (a context variable), so ``cnnlab.utils.split_channels``
runs its worker threads in a copy of the caller's context.

Cost: one ``np.errstate`` per outermost engine call (a model's forward or backward, a
loss, an optimizer step), not per layer: nested calls only read a context variable.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_QUIET = contextvars.ContextVar("cnnlab_quiet_fp", default=False)


@contextmanager
def quiet_fp() -> Iterator[None]:
    """Run the block with NumPy's ``warn`` modes turned to ``ignore`` (others kept).

    Example:
        >>> import numpy as np
        >>> with quiet_fp():
        ...     np.float32(3e38) * np.float32(10)  # no RuntimeWarning
        np.float32(inf)
    """
    if _QUIET.get():
        yield
        return
    modes: dict[str, Any] = {k: "ignore" if v == "warn" else v for k, v in np.geterr().items()}
    token = _QUIET.set(True)
    try:
        with np.errstate(**modes):
            yield
    finally:
        _QUIET.reset(token)


def quiet_fp_method(method: F) -> F:
    """Decorator: run ``method`` under ``quiet_fp`` (for layers' forward/backward and the like)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _QUIET.get():  # already inside the engine: nothing to set
            return method(*args, **kwargs)
        with quiet_fp():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
