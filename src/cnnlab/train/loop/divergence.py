"""When training has diverged: a NaN/inf loss, or a finite loss far above where it started.

``fit`` checks every batch's loss for NaN/inf, and every epoch's mean training loss against
``DIVERGENCE_FACTOR`` times a reference: ``max(ln K, start)``, with ``ln K`` the loss of a
model that guesses uniformly among K classes, and ``start`` the loss the run started from
(the first batch's loss during epoch 1, then epoch 1's mean loss, which the History keeps,
so a resumed run decides exactly as an uninterrupted one). Either way the run stops, the
last good weights are restored and ``TrainingDiverged`` explains what to do.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.train.loop.history import History

#: An epoch whose mean training loss exceeds this many times the reference has diverged.
#: Why 100 (two orders of magnitude) never trips a healthy run: an epoch-mean loss of
#: 100 ln K (230 for 10 classes) means the right class scores ~230 below the best one on
#: the average example. Measured on digits (5 epochs, small/small_bn/lenet5, SGD lr 0.2-3
#: and Adam lr 0.01-1e8): every run that learned anything (ended above chance) had epoch
#: means of at most 11x the reference (Adam lr 0.3 with BatchNorm, 25% test accuracy after a
#: wild first epoch; single batches reached 281x, which is why single batches are not
#: judged); the runs above 100x (up to 1e25x at lr 1e8) all ended at chance. Runs that end
#: at chance without such a rise are for the diagnosis (`cnnlab diagnose`) to call out.
DIVERGENCE_FACTOR = 100.0


class TrainingDiverged(CnnlabError):
    """The training loss became NaN/infinite or rose far above its start; the last good
    weights were restored.

    Attributes:
        history: the History of the epochs that finished before the divergence.
        epoch: the epoch (from 1) in which the loss diverged.
        batch: the batch (from 0) in which the loss diverged (-1: the epoch's mean loss).
    """

    def __init__(self, message: str, history: History, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.batch = batch


def num_classes_of(y: np.ndarray) -> int:
    """K for the chance-level loss ``ln K``: one-hot/probability columns, or the largest label + 1."""
    if y.ndim == 2:
        return int(y.shape[1])
    return int(np.max(y)) + 1 if len(y) else 1


def loss_reference(num_classes: int, start: float) -> float:
    """``max(ln K, start)``: a loss this run has been at, or chance level if it started lower.

    Example:
        >>> round(loss_reference(10, 0.5), 4)
        2.3026
    """
    return max(math.log(max(num_classes, 2)), start)


def nan_diverged(value: float, epoch: int, batch: int, lr: float, history: History) -> TrainingDiverged:
    """The error for a NaN/inf batch loss."""
    return TrainingDiverged(
        f"training diverged: the loss became {value} in epoch {epoch}, batch {batch} (lr={lr:g}). "
        f"The weights from {_restored(epoch)} were restored. "
        f"Advice: lower the learning rate, e.g. --lr {lr / 10:g}; check the inputs are normalized "
        "and contain no NaN.",
        history,
        epoch,
        batch,
    )


def rise_diverged(
    value: float, reference: float, epoch: int, lr: float, history: History
) -> TrainingDiverged:
    """The error for an epoch whose mean loss rose past ``DIVERGENCE_FACTOR * reference``."""
    return TrainingDiverged(
        f"training diverged: the mean training loss of epoch {epoch} rose to {value:.4g}, more than "
        f"{DIVERGENCE_FACTOR:g} times where it started ({reference:.4g}, or chance level if higher) "
        f"(lr={lr:g}). The weights from {_restored(epoch)} were restored. "
        f"Advice: lower the learning rate, e.g. --lr {lr / 10:g} (Adam usually trains at 1e-4 to "
        "1e-2, SGD at 1e-3 to 0.1).",
        history,
        epoch,
        -1,
    )


def _restored(epoch: int) -> str:
    return f"the end of epoch {epoch - 1}" if epoch > 1 else "before training (the initial weights)"
