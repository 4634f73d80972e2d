"""Weight initializers and the one way cnnlab turns a seed into randomness.

Randomness is explicit: every layer that draws numbers takes ``rng``, which may be a
``numpy.random.Generator``, an int seed, or None (a fresh, unseeded generator).

Inside ``dry_build(limit)`` the initializers draw nothing and allocate nothing: they count
the values they were asked for (refusing once there are more than ``limit``) and hand out
read-only zero views of the right shape, so a model of any size can be built to learn its
parameter count and output shapes before memory is committed (``cnnlab.train.runs.memory``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.utils import DEFAULT_DTYPE

RngLike = np.random.Generator | int | None


def make_rng(rng: RngLike) -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, else ``np.random.default_rng(rng)``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class TooManyParameters(CnnlabError):
    """A ``dry_build`` was asked for more than its limit of values (``count`` so far)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the model needs more than {limit:,} parameters (at least {count:,})")
        self.count, self.limit = count, limit


_DRY: ContextVar[list[int] | None] = ContextVar("cnnlab_dry_build", default=None)


@contextmanager
def dry_build(limit: int) -> Iterator[None]:
    """Initializers hand out zero views instead of drawing, and refuse past ``limit`` values.

    Example:
        >>> with dry_build(limit=100):
        ...     w = torch_default_uniform((10, 10), 10, make_rng(0))
        >>> w.shape, w.strides, w.flags.writeable
        ((10, 10), (0, 0), False)
    """
    token = _DRY.set([0, limit])
    try:
        yield
    finally:
        _DRY.reset(token)


def _dry(shape: tuple[int, ...]) -> np.ndarray | None:
    """In a ``dry_build``: count ``shape``'s values and return a zero view (else None)."""
    tally = _DRY.get()
    if tally is None:
        return None
    tally[0] += math.prod(shape)  # Python ints: no overflow, however large the request
    if tally[0] > tally[1]:
        raise TooManyParameters(tally[0], tally[1])
    return np.broadcast_to(np.zeros((), DEFAULT_DTYPE), shape)  # no memory behind it


def torch_default_uniform(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv and linear layers.

    (PyTorch's kaiming_uniform_ with a=sqrt(5) reduces to this bound for the weight, and
    its bias uses the same bound.)
    """
    dry = _dry(shape)
    if dry is not None:
        return dry
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(DEFAULT_DTYPE)
