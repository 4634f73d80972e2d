"""The engine contract: what ``fit``'s one training loop asks of whoever does the arithmetic.

``fit`` owns everything around the arithmetic, once: the validation split, the seeded
shuffling and augmentation generators, the History, callbacks, the divergence rule,
checkpoints and resume, progress and Ctrl-C. An engine owns the numbers: one optimizer
step on a batch, an evaluation pass, and (for an engine that trains a copy of the model,
such as PyTorch's) copying the trained weights back. The loop calls, in this order::

    engine.begin()                       # after a resume has loaded model and optimizer
    for each epoch:
        engine.begin_epoch(epoch, lr)
        for each batch:
            loss, correct = engine.train_step(xb, yb)
        engine.evaluate(x_val, y_val, batch_size)
        engine.end_epoch()               # the cnnlab model and optimizer are now current
        engine.share_decisions(ctx)      # after the callbacks
    engine.end(completed)                # always, also after an error

Between epochs the cnnlab model and optimizer hold the whole state of the run, so
checkpoints, callbacks (EarlyStopping's best weights) and the last-good copy that a
divergence or Ctrl-C restores are the loop's business, the same for every engine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The engines ``fit(backend=...)`` and ``cnnlab train --backend`` can name, each with what it is.
BACKENDS: dict[str, str] = {"numpy": "cnnlab's engine", "torch": "PyTorch; also under torchrun"}
#: The devices ``fit(device=...)`` and ``cnnlab train --device`` can name ("cuda" needs "torch").
DEVICES = ("cpu", "cuda")


class Engine:
    """Base class: the single-process defaults; subclasses do the arithmetic.

    Attributes:
        is_main: this process runs the callbacks, shows progress and writes files (False on
            the other processes of a ``torchrun`` job).
    """

    is_main: bool = True

    def begin(self) -> None:
        """Training starts (the model and optimizer already hold a resumed state, if any)."""

    def begin_epoch(self, epoch: int, lr: float) -> None:
        """An epoch starts; ``lr`` is the optimizer's rate for it (schedules change it between epochs)."""

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float]:
        """One optimizer step on the batch ``(xb, yb)`` (the whole global batch under torchrun).

        Returns:
            ``(loss, correct)``: the batch's mean loss (before the step) and how many of its
            examples were predicted right. After a non-finite loss the weights may be
            garbage: the loop restores the last good ones.
        """
        raise NotImplementedError

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
        """Mean loss and accuracy on ``(x, y)`` in eval mode, batch by batch."""
        raise NotImplementedError

    def end_epoch(self) -> None:
        """The epoch's training is done: make the cnnlab model and optimizer current."""

    def epoch_note(self) -> str:
        """A few words the epoch's progress line adds (the torch engine: compile seconds)."""
        return ""

    def share_decisions(self, ctx: Any) -> None:
        """After the callbacks: let every process agree on ``ctx.stop_training`` and the lr."""

    def end(self, completed: bool) -> None:
        """Training is over (``completed``: without an exception); release what ``begin`` took."""
