"""Learning-rate schedules, stepped once per epoch: StepLR, CosineWarmup, ReduceLROnPlateau.

Each schedule sets ``optimizer.lr`` (a plain float) when built and after every ``step()``,
and saves/restores its counters with ``state_dict()`` / ``load_state_dict()``. Call
``step()`` AFTER each epoch's training (PyTorch's order); the lr for epoch ``e`` (counting
from 0) is the one set after ``e`` steps.
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.errors import arg_error, check_int
from cnnlab.optim.base import Optimizer


class _Schedule:
    """Shared parts: the optimizer, its starting lr ``base_lr`` and the epoch counter."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise arg_error(self.name, "optimizer", "a cnnlab Optimizer", optimizer)
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0  # number of step() calls so far

    @property
    def name(self) -> str:
        return type(self).__name__

    def get_lr(self) -> float:
        """The learning rate in use now (``optimizer.lr``)."""
        return self.optimizer.lr

    def _saved(self) -> tuple[str, ...]:
        """Attribute names saved by state_dict (besides type and lr)."""
        return ("base_lr", "last_epoch")

    def state_dict(self) -> dict[str, Any]:
        """Counters as JSON-able scalars, plus ``lr``: the rate this schedule last set."""
        return {"type": self.name, "lr": self.optimizer.lr, **{k: getattr(self, k) for k in self._saved()}}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output, and set ``optimizer.lr`` to the saved ``lr``.

        Raises:
            ValueError: a state from another schedule type.
            KeyError: missing keys (all listed).
        """
        if d.get("type") != self.name:
            raise ValueError(
                f"{self.name}.load_state_dict: the state is from {d.get('type')!r}, not {self.name!r}"
            )
        missing = [k for k in ("lr", *self._saved()) if k not in d]
        if missing:
            raise KeyError(f"{self.name}.load_state_dict: missing keys {missing}. Received: {sorted(d)}")
        for key in self._saved():
            setattr(self, key, d[key])
        self.optimizer.lr = float(d["lr"])


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr = base_lr * gamma ** (epoch // step_size)``, applied as PyTorch's StepLR does (one
    multiplication at each boundary, so a change of ``optimizer.lr`` in between is kept).

    Args:
        optimizer: the optimizer whose ``lr`` is scheduled.
        step_size: epochs between decays (positive int).
        gamma: decay factor (> 0).

    Example:
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.optim.sgd import SGD
        >>> opt = SGD(Dense(1, 1, rng=0).parameters(), lr=1.0)
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)
        >>> lrs = []
        >>> for epoch in range(5):
        ...     lrs.append(sched.get_lr())  # ... train one epoch with this lr ...
        ...     sched.step()
        >>> lrs
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        check_int("StepLR", "step_size", step_size)
        if not gamma > 0:
            raise arg_error("StepLR", "gamma", "a positive float", gamma)
        self.step_size = step_size
        self.gamma = float(gamma)

    def step(self) -> None:
        """End of an epoch: decay the lr when ``step_size`` epochs have passed."""
        self.last_epoch += 1
        if self.last_epoch % self.step_size == 0:
            self.optimizer.lr = self.optimizer.lr * self.gamma


class CosineWarmup(_Schedule):
    """Linear warmup, then cosine decay from ``base_lr`` to ``min_lr`` at ``total_epochs``.

    With ``w = warmup_epochs`` and ``T = total_epochs``, the lr of epoch ``e`` (from 0) is::

        e < w:   base_lr * (e + 1) / (w + 1)             # base/(w+1), 2*base/(w+1), ...
        e >= w:  min_lr + (base_lr - min_lr) * (1 + cos(pi * min(1, (e - w) / (T - w)))) / 2

    so warmup never uses lr 0, the first cosine epoch uses ``base_lr`` and epoch ``T`` (or
    later) uses ``min_lr``, like ``CosineAnnealingLR(T_max=T - w)`` after the warmup.

    Args:
        optimizer: the optimizer; its ``lr`` when the schedule is built is ``base_lr``.
        total_epochs: length of the run in epochs (positive int).
        warmup_epochs: epochs of linear warmup, in [0, total_epochs).
        min_lr: final learning rate, in [0, base_lr].

    Example:
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.optim.sgd import SGD
        >>> opt = SGD(Dense(1, 1, rng=0).parameters(), lr=1.0)
        >>> sched = CosineWarmup(opt, total_epochs=5, warmup_epochs=1)
        >>> lrs = []
        >>> for epoch in range(5):
        ...     lrs.append(round(sched.get_lr(), 4))
        ...     sched.step()
        >>> lrs
        [0.5, 1.0, 0.8536, 0.5, 0.1464]
    """

    def __init__(
        self, optimizer: Optimizer, total_epochs: int, warmup_epochs: int = 0, min_lr: float = 0.0
    ) -> None:
        super().__init__(optimizer)
        check_int("CosineWarmup", "total_epochs", total_epochs)
        if (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, int)
            or not 0 <= warmup_epochs < total_epochs
        ):
            raise arg_error(
                "CosineWarmup", "warmup_epochs", f"an int in [0, total_epochs={total_epochs})", warmup_epochs
            )
        if not 0 <= min_lr <= self.base_lr:
            raise arg_error("CosineWarmup", "min_lr", f"a float in [0, lr={self.base_lr}]", min_lr)
        self.total_epochs = total_epochs
        self.warmup_epochs = warmup_epochs
        self.min_lr = float(min_lr)
        self.optimizer.lr = self.lr_at(0)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (counting from 0)."""
        w, T = self.warmup_epochs, self.total_epochs
        if epoch < w:
            return self.base_lr * (epoch + 1) / (w + 1)
        progress = min(1.0, (epoch - w) / (T - w))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def step(self) -> None:
        """End of an epoch: set the lr of the next one."""
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)


class ReduceLROnPlateau(_Schedule):
    """Multiply the lr by ``factor`` when a metric stops improving for ``patience`` epochs.

    PyTorch's rules (``threshold_mode="rel"``): in mode ``"min"`` a value improves on the
    best if ``value < best * (1 - threshold)`` (``"max"``: ``value > best * (1 + threshold)``).
    After more than ``patience`` epochs without improvement the lr becomes
    ``max(lr * factor, min_lr)`` (skipped when that changes it by less than 1e-8), and the
    count restarts after ``cooldown`` quiet epochs. NaN never counts as an improvement.

    Args:
        optimizer: the optimizer whose ``lr`` is reduced.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: multiplier for the lr, in (0, 1).
        patience: epochs without improvement tolerated before a reduction (int >= 0).
        threshold: relative improvement that counts (>= 0).
        min_lr: lower bound of the lr (>= 0).
        cooldown: epochs to wait after a reduction before counting again (int >= 0).

    Example:
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.optim.sgd import SGD
        >>> opt = SGD(Dense(1, 1, rng=0).parameters(), lr=1.0)
        >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
        >>> for val_loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95]:
        ...     sched.step(val_loss)
        >>> sched.get_lr()
        0.25
    """

    _EPS = 1e-8  # PyTorch's eps: smaller lr changes are ignored

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        min_lr: float = 0.0,
        cooldown: int = 0,
    ) -> None:
        super().__init__(optimizer)
        where = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise arg_error(where, "mode", "'min' or 'max'", mode)
        if not 0 < factor < 1:
            raise arg_error(where, "factor", "a float in (0, 1)", factor)
        for arg, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise arg_error(where, arg, "a non-negative int", value)
        if not threshold >= 0:
            raise arg_error(where, "threshold", "a non-negative float", threshold)
        if not min_lr >= 0:
            raise arg_error(where, "min_lr", "a non-negative float", min_lr)
        self.mode, self.factor, self.patience = mode, float(factor), patience
        self.threshold, self.min_lr, self.cooldown = float(threshold), float(min_lr), cooldown
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _saved(self) -> tuple[str, ...]:
        return (*super()._saved(), "best", "num_bad_epochs", "cooldown_counter")

    def is_better(self, value: float) -> bool:
        """Whether ``value`` improves on ``best`` by more than the relative threshold."""
        if self.mode == "min":
            return value < self.best * (1.0 - self.threshold)
        return value > self.best * (1.0 + self.threshold)

    def step(self, metric: float) -> None:
        """End of an epoch: record ``metric`` (e.g. the validation loss), maybe reduce the lr."""
        value = float(metric)
        self.last_epoch += 1
        if self.is_better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            old = self.optimizer.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self._EPS:
                self.optimizer.lr = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
