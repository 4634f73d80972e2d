"""Errors for users, and the one helper that words them.

Every message names the layer (or function), the argument, what was expected and what
was received, in the Keras style: ``Conv2D: argument `stride` must be a positive int or
pair. Received: stride=0``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any


class ShapeError(ValueError):
    """An array has the wrong shape for a layer or function (subclass of ``ValueError``)."""


class CnnlabError(RuntimeError):
    """A problem with state or files that is not a shape or argument mistake."""


def arg_error(where: str, arg: str, expected: str, received: Any) -> ValueError:
    """Build the ValueError for a bad argument.

    Example:
        >>> print(arg_error("Conv2D", "stride", "a positive int or pair", 0))
        Conv2D: argument `stride` must be a positive int or pair. Received: stride=0
    """
    return ValueError(f"{where}: argument `{arg}` must be {expected}. Received: {arg}={received!r}")


def shape_error(where: str, what: str, expected: str, received: Any) -> ShapeError:
    """Build the ShapeError for an array of the wrong shape.

    Example:
        >>> print(shape_error("Dense", "input", "shape (N, 4)", (2, 3)))
        Dense: input must have shape (N, 4). Received: shape (2, 3)
    """
    if isinstance(received, tuple):
        received = f"shape {received}"
    return ShapeError(f"{where}: {what} must have {expected}. Received: {received}")


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for ``bool`` (``True`` is not a size)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_kind(minimum: int) -> str:
    return "a positive int" if minimum == 1 else f"an int >= {minimum}"


def check_int(where: str, arg: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or the argument error: an int (not a bool) >= ``minimum``.

    Example:
        >>> check_int("Dense", "in_features", 3)
        3
        >>> check_int("Dense", "in_features", 0)
        Traceback (most recent call last):
        ...
        ValueError: Dense: argument `in_features` must be a positive int. Received: in_features=0
    """
    if not is_int(value) or value < minimum:
        raise arg_error(where, arg, _int_kind(minimum), value)
    return int(value)


def check_real(
    where: str,
    arg: str,
    value: Any,
    expected: str = "a finite real number",
    ok: Callable[[Any], bool] = math.isfinite,
) -> Any:
    """``value`` (unchanged) if it is a real number, not a bool, and ``ok(value)``; else the error.

    Example:
        >>> check_real("Dropout", "p", 0.5, "a number with 0 <= p < 1", lambda p: 0 <= p < 1)
        0.5
        >>> check_real("ELU", "alpha", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: ELU: argument `alpha` must be a finite real number. Received: alpha=nan
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
        raise arg_error(where, arg, expected, value)
    return value


def int_pair(
    where: str, arg: str, value: Any, minimum: int = 1, alternatives: tuple[str, ...] = ()
) -> tuple[int, int]:
    """An int or a pair (tuple/list) of ints >= ``minimum``, as a pair: Keras's ``standardize_tuple``.

    The one check behind every ``kernel_size``, ``stride``, ``padding`` and ``dilation``
    argument. ``alternatives`` are the strings the caller accepts besides (only named in the
    message; the caller handles them before calling).

    Example:
        >>> int_pair("Conv2D", "stride", 2), int_pair("Conv2D", "padding", [1, 0], minimum=0)
        ((2, 2), (1, 0))
        >>> int_pair("Pool", "stride", (2, 0))
        Traceback (most recent call last):
        ...
        ValueError: Pool: argument `stride` must be a positive int or a pair of them. Received: stride=(2, 0)
    """
    items = list(value) if isinstance(value, (tuple, list)) else [value, value]
    if len(items) != 2 or not all(is_int(v) for v in items) or min(items) < minimum:
        kind = _int_kind(minimum)
        if alternatives:
            expected = f"{kind}, a pair of them, or one of {', '.join(map(repr, alternatives))}"
        else:
            expected = f"{kind} or a pair of them"
        raise arg_error(where, arg, expected, value)
    return int(items[0]), int(items[1])
