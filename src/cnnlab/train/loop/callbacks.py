"""Callbacks: code that ``fit`` runs at fixed points of the loop (Keras-style hooks).

The hooks, in the order ``fit`` calls them::

    on_train_begin(ctx)
    for each epoch:
        on_epoch_begin(epoch, ctx)
        on_batch_end(batch, logs, ctx)      # after every optimizer step
        on_epoch_end(epoch, logs, ctx)      # logs = the epoch's History row
    on_train_end(ctx)                       # not called when training diverges

``ctx`` (a ``TrainContext``) gives access to the model, the optimizer, the history and the
``stop_training`` flag: set it to True to stop after the current epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, arg_error
from cnnlab.io import save
from cnnlab.train.loop.history import History, PathLike, resolve_mode


@dataclass
class TrainContext:
    """What callbacks may read and change while ``fit`` runs."""

    model: Any
    optimizer: Any
    history: History
    epochs: int
    epoch: int = 0
    stop_training: bool = False


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_train_begin(self, ctx: TrainContext) -> None:
        pass

    def on_epoch_begin(self, epoch: int, ctx: TrainContext) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        pass

    def on_train_end(self, ctx: TrainContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any] | None:
        """What a checkpoint keeps of this callback, or None for nothing.

        JSON numbers under any keys, plus ``"arrays"``: a dict of arrays shaped like entries
        of the model's ``state_dict()`` (e.g. saved weights), stored beside the model's.
        """
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; ``fit`` calls it on resume, after ``on_train_begin``."""


class _Monitor:
    """Tracks the best value of one History column and says whether a new one improves it."""

    def __init__(self, where: str, monitor: str, mode: str, min_delta: float) -> None:
        if min_delta < 0:
            raise arg_error(where, "min_delta", "a float >= 0", min_delta)
        self.where = where
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode, where)
        self.min_delta = min_delta
        self.best = math.inf if self.mode == "min" else -math.inf

    def value(self, logs: dict[str, Any]) -> float:
        value = logs.get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            hint = ""
            if self.monitor.startswith("val_"):
                hint = " (val_* metrics need val_data or val_split > 0)"
            available = [k for k, v in logs.items() if not (isinstance(v, float) and math.isnan(v))]
            raise CnnlabError(
                f"{self.where}: monitored metric `{self.monitor}` is not available{hint}. "
                f"Available: {', '.join(available)}"
            )
        return float(value)

    def improves(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; keep the best weights.

    With ``restore_best_weights`` the model ends with the weights of its best epoch, whether
    training stopped early or ran all its epochs.

    Args:
        monitor: a History column, e.g. "val_loss" or "val_accuracy".
        patience: epochs without improvement before stopping.
        mode: "min", "max" or "auto" (max for accuracies, min otherwise).
        min_delta: smallest change that counts as an improvement.
        restore_best_weights: load the best epoch's weights at the end of training.

    Attributes:
        best_epoch: the epoch of the best value (0 before the first epoch).
        stopped_epoch: the epoch at which training stopped early (0 if it did not).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise arg_error("EarlyStopping", "patience", "an int >= 0", patience)
        self.tracker = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.best_epoch = 0
        self.stopped_epoch = 0
        self.best_state: dict[str, np.ndarray] | None = None

    def on_train_begin(self, ctx: TrainContext) -> None:
        # Reset, so one instance can serve several fit() calls.
        self.tracker.best = math.inf if self.tracker.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.stopped_epoch, self.best_state = 0, 0, 0, None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        value = self.tracker.value(logs)
        if self.tracker.improves(value):
            self.tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = ctx.model.state_dict()  # copies
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            ctx.stop_training = True

    def on_train_end(self, ctx: TrainContext) -> None:
        if self.restore_best_weights and self.best_state is not None:
            ctx.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        """The best value, its epoch and weights, and the patience count: a resumed run stops
        at the same epoch and ends with the same weights as an uninterrupted one."""
        return {
            "best": self.tracker.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "arrays": dict(self.best_state or {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best = float(state["best"])
        self.best_epoch, self.wait = int(state["best_epoch"]), int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_state = dict(state["arrays"]) or None


class ModelCheckpoint(Callback):
    """Save the model after an epoch: every epoch, or only when ``monitor`` improves.

    ``path`` may hold ``{epoch}`` (and other History columns), e.g. ``"ckpt-{epoch:02d}.npz"``.

    Args:
        path: where to save.
        monitor: the History column that decides "best".
        save_best_only: save only when ``monitor`` improves (else every epoch).
        mode: "min", "max" or "auto".
        save_fn: ``save_fn(model, path)``; default ``cnnlab.io.save`` (atomic, no pickle).

    Attributes:
        saved: the paths written, in order.
        best: the best monitored value so far.
    """

    def __init__(
        self,
        path: PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
        save_fn: Callable[[Any, Path], Any] | None = None,
    ) -> None:
        self.path = path
        self.tracker = _Monitor("ModelCheckpoint", monitor, mode, 0.0)
        self.save_best_only = save_best_only
        self.save_fn = save_fn
        self.saved: list[Path] = []

    @property
    def best(self) -> float:
        return self.tracker.best

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        if self.save_best_only:
            value = self.tracker.value(logs)
            if not self.tracker.improves(value):
                return
            self.tracker.best = value
        path = Path(str(self.path).format(**logs))
        if self.save_fn is not None:
            self.save_fn(ctx.model, path)
        else:
            raw = logs.get(self.tracker.monitor)
            monitored = None if raw is None or math.isnan(raw) else float(raw)
            save(ctx.model, path, extra={"epoch": epoch, self.tracker.monitor: monitored})
        self.saved.append(path)

    def state_dict(self) -> dict[str, Any]:
        """The best value so far: a resumed run never overwrites the best file with a worse model."""
        return {"best": self.tracker.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best = float(state["best"])


class ReduceLROnPlateauCallback(Callback):
    """Multiply the optimizer's ``lr`` by ``factor`` when ``monitor`` stalls for ``patience`` epochs.

    Also exported as ``ReduceLROnPlateau`` from this module (the schedule of the same name in
    ``cnnlab.optim`` does the same job when passed to ``fit(schedule=...)``).

    Args:
        monitor: the History column to watch.
        factor: the multiplier, in (0, 1).
        patience: epochs without improvement before lowering the rate.
        min_lr: the rate never goes below this.
        mode: "min", "max" or "auto".
        min_delta: smallest change that counts as an improvement.

    Attributes:
        reductions: ``(epoch, new_lr)`` for each reduction.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 3,
        min_lr: float = 0.0,
        mode: str = "auto",
        min_delta: float = 0.0,
    ) -> None:
        if not 0.0 < factor < 1.0:
            raise arg_error("ReduceLROnPlateau", "factor", "a float in (0, 1)", factor)
        if not isinstance(patience, int) or patience < 0:
            raise arg_error("ReduceLROnPlateau", "patience", "an int >= 0", patience)
        self.tracker = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.wait = 0
        self.reductions: list[tuple[int, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        value = self.tracker.value(logs)
        if self.tracker.improves(value):
            self.tracker.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            new_lr = max(ctx.optimizer.lr * self.factor, self.min_lr)
            if new_lr < ctx.optimizer.lr:
                ctx.optimizer.lr = new_lr
                self.reductions.append((epoch, new_lr))
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """The best value, the epochs waited and the reductions so far: a resumed run lowers
        the rate at the same epochs as an uninterrupted one."""
        return {
            "best": self.tracker.best,
            "wait": self.wait,
            "reductions": [[epoch, lr] for epoch, lr in self.reductions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.best, self.wait = float(state["best"]), int(state["wait"])
        self.reductions = [(int(epoch), float(lr)) for epoch, lr in state["reductions"]]


ReduceLROnPlateau = ReduceLROnPlateauCallback


class CSVLogger(Callback):
    """Rewrite the whole History as CSV at ``path`` after every epoch (atomically)."""

    def __init__(self, path: PathLike) -> None:
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        ctx.history.to_csv(self.path)


class JSONLogger(Callback):
    """Rewrite the whole History as JSON at ``path`` after every epoch (atomically)."""

    def __init__(self, path: PathLike) -> None:
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], ctx: TrainContext) -> None:
        ctx.history.to_json(self.path)
