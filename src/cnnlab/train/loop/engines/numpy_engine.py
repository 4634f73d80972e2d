"""The NumPy engine: cnnlab's own layers do the arithmetic, in place on the model.

One training step is the lecture's chain: forward -> loss -> backward -> optimizer step.
The model itself is trained, so there is nothing to copy back at the end of an epoch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.layers.fuse import fuse
from cnnlab.process import tune_process
from cnnlab.train.evaluation.metrics import accuracy
from cnnlab.train.loop.engines.base import Engine


class NumpyEngine(Engine):
    """Train a cnnlab model with its own ``forward``/``backward`` and a cnnlab optimizer.

    Args:
        model: a ``Sequential`` (forward, backward, train, eval).
        loss: ``forward(logits, y) -> float``, ``backward() -> dlogits``.
        optimizer: ``step()`` updates the model's parameters from their grads.
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any) -> None:
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self._first_flags: list[tuple[Any, bool]] = []  # (layer, its needs_input_grad)
        self._step_model: Any = model

    def begin(self) -> None:
        # OpenBLAS's idle workers sleep, malloc keeps freed memory (once per process;
        # CNNLAB_TUNE_PROCESS=0: off; cnnlab.process).
        tune_process()
        # The data needs no gradient: the convs that read it skip computing dL/dx
        # (docs/performance.md): a Sequential's first layer, a Graph's nodes on its input.
        readers = self.model.input_layers() if hasattr(self.model, "input_layers") else []
        self._first_flags = [
            (layer, layer.needs_input_grad) for layer in readers if hasattr(layer, "needs_input_grad")
        ]
        for layer, _ in self._first_flags:
            layer.needs_input_grad = False
        # Steps run on a view with ReLU -> MaxPool2D pairs fused (same arrays; cnnlab.layers.fuse).
        self._step_model = fuse(self.model)
        # Nor does the model's input: a Graph skips the nodes that hold only frozen layers
        # and read only the input or such nodes (cnnlab.layers.freeze).
        self._step_model.needs_input_grad = False

    def begin_epoch(self, epoch: int, lr: float) -> None:
        self.model.train()  # evaluate() leaves it in eval mode

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float]:
        logits = self._step_model.forward(xb)  # (B, K)
        batch_loss = float(self.loss.forward(logits, yb))
        if not math.isfinite(batch_loss):  # nothing to learn from: the loop stops the run
            return batch_loss, math.nan
        self._step_model.backward(self.loss.backward())  # writes every layer's grads
        self.optimizer.step()
        return batch_loss, accuracy(logits, yb) * len(xb)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
        return validate(self.model, self.loss, x, y, batch_size)

    def end(self, completed: bool) -> None:
        for layer, flag in self._first_flags:
            layer.needs_input_grad = flag


def validate(
    model: Any, loss: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)`` in eval mode, batch by batch.

    The model is left in eval mode; ``fit`` switches it back with ``model.train()``.
    """
    model.eval()
    loss_sum, correct = 0.0, 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        logits = model.forward(xb)  # (B, K); no backward, so nothing else is needed
        loss_sum += float(loss.forward(logits, yb)) * len(xb)
        correct += accuracy(logits, yb) * len(xb)
    return loss_sum / len(x), correct / len(x)
