"""Weight initializers and the one way cnnlab turns a seed into randomness.

Randomness is explicit: every layer that draws numbers takes ``rng``, which may be a
``numpy.random.Generator``, an int seed, or None (a fresh, unseeded generator).
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.utils import DEFAULT_DTYPE

RngLike = np.random.Generator | int | None


def make_rng(rng: RngLike) -> np.random.Generator:
    """Return ``rng`` itself if it is a Generator, else ``np.random.default_rng(rng)``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def torch_default_uniform(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for conv and linear layers.

    (PyTorch's kaiming_uniform_ with a=sqrt(5) reduces to this bound for the weight, and
    its bias uses the same bound.)
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(DEFAULT_DTYPE)


def he_normal(shape: tuple[int, ...], fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """N(0, 2/fan_in) (He et al., 2015): keeps ReLU activations' variance steady in depth."""
    return (rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))).astype(DEFAULT_DTYPE)
