"""Engines: who does the arithmetic of ``fit``'s one training loop (see ``base.Engine``).

- ``numpy``: cnnlab's own layers (``numpy_engine.NumpyEngine``), the default.
- ``torch``: a PyTorch copy of the model on CPU or CUDA, also under torchrun
  (``torch_engine.TorchEngine``; torch is imported only when it is chosen).
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import arg_error
from cnnlab.train.loop.engines.base import BACKENDS, DEVICES, Engine
from cnnlab.train.loop.engines.numpy_engine import NumpyEngine
from cnnlab.train.loop.engines.torch_engine import TorchEngine

__all__ = ["BACKENDS", "DEVICES", "Engine", "NumpyEngine", "make_engine"]


def make_engine(
    backend: str,
    model: Any,
    loss: Any,
    optimizer: Any,
    *,
    seed: int,
    device: str,
    batch_size: int,
    compile_model: bool = False,
) -> Engine:
    """The engine for ``backend`` ("numpy" or "torch"); errors name what cannot work.

    ``compile_model`` (torch only): ``torch.compile`` the module (``cnnlab train --compile``).

    Example:
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.losses import SoftmaxCrossEntropy
        >>> from cnnlab.optim.sgd import SGD
        >>> layer = Dense(3, 2, rng=0)
        >>> engine = make_engine("numpy", layer, SoftmaxCrossEntropy(), SGD(layer.parameters(), lr=0.1),
        ...                      seed=0, device="cpu", batch_size=8)
        >>> type(engine).__name__
        'NumpyEngine'
    """
    if backend == "numpy":
        if device != "cpu":
            raise arg_error("fit", "device", 'cpu with backend="numpy" (cuda needs backend="torch")', device)
        if compile_model:
            raise arg_error(
                "fit",
                "compile_model",
                'False with backend="numpy" (torch.compile needs backend="torch")',
                compile_model,
            )
        return NumpyEngine(model, loss, optimizer)
    if backend == "torch":
        return TorchEngine(
            model,
            loss,
            optimizer,
            seed=seed,
            device=device,
            batch_size=batch_size,
            compile_model=compile_model,
        )
    raise arg_error("fit", "backend", f"one of {', '.join(BACKENDS)}", backend)
