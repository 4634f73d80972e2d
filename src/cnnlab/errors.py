"""Errors for users, and the one helper that words them.

Every message names the layer (or function), the argument, what was expected and what
was received, in the Keras style: ``Conv2D: argument `stride` must be a positive int or
pair. Received: stride=0``.
"""

from __future__ import annotations

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
