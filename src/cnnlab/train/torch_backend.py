"""``fit_torch``: ``fit`` with the PyTorch engine (``cnnlab train --backend torch``).

The loop is ``cnnlab.train.loop.fit.fit``; the arithmetic is ``cnnlab.train.loop.engines.torch_engine``
(whose helpers are re-exported here for code that imported them from this module).
"""

from __future__ import annotations

from typing import Any

from cnnlab.train.loop.engines.torch_engine import (
    DEVICES,
    copy_back,
    label_smoothing_of,
    resolve_device,
    to_tensors,
    to_torch_on,
    torch_optimizer,
    train_step,
    validate_torch,
)
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import History

__all__ = [
    "DEVICES",
    "copy_back",
    "fit_torch",
    "label_smoothing_of",
    "resolve_device",
    "to_tensors",
    "to_torch_on",
    "torch_optimizer",
    "train_step",
    "validate_torch",
]


def fit_torch(*args: Any, device: str = "cpu", **kwargs: Any) -> History:
    """``fit(*args, backend="torch", device=device, **kwargs)``: see ``cnnlab.train.loop.fit.fit``.

    Args:
        device: "cpu" or "cuda" (under torchrun: the GPU ``LOCAL_RANK``).
    """
    return fit(*args, backend="torch", device=device, **kwargs)
