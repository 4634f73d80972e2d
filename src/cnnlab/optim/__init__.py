"""Optimizers (SGD, Adam, AdamW) and per-epoch learning-rate schedules.

Training step: ``model.backward(...)`` writes the grads, ``optimizer.step()`` updates
the params in place; after each epoch ``schedule.step()`` sets ``optimizer.lr``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cnnlab.layers.base import Param
from cnnlab.optim.adam import Adam, AdamW
from cnnlab.optim.base import Optimizer
from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau, StepLR
from cnnlab.optim.sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(
    name: str, params: Iterable[Param], lr: float, weight_decay: float = 0.0, momentum: float = 0.9
) -> Optimizer:
    """Build an optimizer by name (for the CLI): ``"sgd"``, ``"adam"`` or ``"adamw"``.

    ``momentum`` is used by SGD only; the other settings keep their defaults.

    Raises:
        ValueError: an unknown name (the valid ones are listed).

    Example:
        >>> from cnnlab.layers.dense import Dense
        >>> make_optimizer("sgd", Dense(3, 1, bias=False, rng=0).parameters(), lr=0.1)
        SGD(1 params, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.0)
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}. Valid names: {', '.join(OPTIMIZERS)}")
    if key == "sgd":
        return SGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    return OPTIMIZERS[key](params, lr, weight_decay=weight_decay)  # type: ignore[call-arg]


__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineWarmup",
    "Optimizer",
    "ReduceLROnPlateau",
    "StepLR",
    "make_optimizer",
]
