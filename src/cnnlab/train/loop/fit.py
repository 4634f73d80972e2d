"""fit: the training loop, top to bottom, whatever engine does the arithmetic.

One epoch is: shuffle, then for every mini-batch one optimizer step (the engine's
``train_step``: forward -> loss -> backward -> step); then validate in eval mode, record a
History row, step the learning-rate schedule and run the callbacks. Every random choice
(validation split, shuffling, augmentation) comes from generators spawned from ``seed``, so
the same seed gives the same run, bit for bit (given a model initialized from a seed too),
and both engines (``backend="numpy"`` or ``"torch"``, see ``cnnlab.train.loop.engines``) see the
same batches in the same order.

Resuming: ``checkpoint_fn`` receives a ``TrainState`` (weights, optimizer, schedule,
callbacks, every generator's state, history) after each epoch; passing one back as
``initial_state`` continues the run as if it had never stopped: the final weights are
bit-identical.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from cnnlab.data.loader import DataLoader, stratified_split
from cnnlab.data.prefetch import prefetch
from cnnlab.errors import arg_error, check_int
from cnnlab.train.loop.callbacks import Callback, TrainContext
from cnnlab.train.loop.checkpoint import (
    TrainState,
    capture_state,
    layer_rngs,
    restore_callbacks,
    restore_state,
)
from cnnlab.train.loop.divergence import (
    DIVERGENCE_FACTOR,
    loss_reference,
    nan_diverged,
    num_classes_of,
    rise_diverged,
)
from cnnlab.train.loop.engines import make_engine
from cnnlab.train.loop.history import History
from cnnlab.train.loop.progress import make_progress

__all__ = ["TrainBatches", "Transform", "augmented", "fit"]

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def fit(
    model: Any,
    loss: Any,
    optimizer: Any,
    train_data: tuple[np.ndarray, np.ndarray],
    *,
    val_data: tuple[np.ndarray, np.ndarray] | None = None,
    val_split: float = 0.0,
    epochs: int = 10,
    batch_size: int = 64,
    callbacks: Sequence[Callback] = (),
    seed: int = 0,
    schedule: Any = None,
    transform: Transform | None = None,
    verbose: bool = True,
    initial_state: TrainState | None = None,
    checkpoint_fn: Callable[[TrainState], Any] | None = None,
    backend: str = "numpy",
    device: str = "cpu",
    overlap: bool = True,
    compile_model: bool = False,
) -> History:
    """Train ``model`` with mini-batch gradient descent and return its History.

    Args:
        model: a ``Sequential`` (forward, backward, train, eval, state_dict, load_state_dict).
        loss: e.g. ``SoftmaxCrossEntropy()``: ``forward(logits, y) -> float``, ``backward() -> dlogits``.
        optimizer: e.g. ``SGD(model.parameters(), lr=0.1)``: ``step()`` and a settable ``lr``.
        train_data: ``(x, y)`` arrays.
        val_data: ``(x, y)`` arrays for validation after every epoch.
        val_split: instead of ``val_data``, hold out this share of ``train_data``
            (stratified by class, shuffled with ``seed``).
        epochs: passes over the training data.
        batch_size: samples per optimizer step (under torchrun: the global batch).
        callbacks: ``Callback`` objects (EarlyStopping, ModelCheckpoint, CSVLogger, ...).
        seed: seeds the split, the shuffling and the augmentation.
        schedule: a learning-rate schedule stepped once per epoch; one whose ``step`` takes a
            metric (``ReduceLROnPlateau``) gets ``val_loss`` (``train_loss`` without validation).
        transform: augmentation ``transform(xb, rng) -> xb`` applied to training batches only.
        verbose: show progress (a live bar in a terminal, one line per epoch otherwise).
        initial_state: a ``TrainState`` (from ``checkpoint_fn`` or ``load_checkpoint``) to
            continue from: training resumes with epoch ``initial_state.epoch + 1``.
        checkpoint_fn: called with a ``TrainState`` at the end of every epoch (after the
            schedule and callbacks), e.g. ``lambda s: save_checkpoint(path, s)``.
        backend: "numpy" (cnnlab's layers) or "torch" (PyTorch does the arithmetic; only
            SoftmaxCrossEntropy and SGD/Adam/AdamW; under torchrun only rank 0 runs the
            callbacks, shows progress and calls ``checkpoint_fn``).
        device: "cpu", or "cuda" with ``backend="torch"``.
        overlap: prepare the next batch (loading, augmentation) in a background thread
            while the engine trains on the current one (``cnnlab.data.prefetch``); the same
            batches in the same order either way.
        compile_model: with ``backend="torch"``: ``torch.compile`` the module (eager with a
            one-line notice where the compiler fails; ``cnnlab train --compile``).

    Returns:
        The History, one row per epoch that finished; ``model`` and ``optimizer`` hold the
        trained weights and state.

    Raises:
        TrainingDiverged: a batch loss became NaN/inf, or an epoch's mean loss rose more than
            ``DIVERGENCE_FACTOR`` times above its start (``cnnlab.train.loop.divergence``). The
            weights from the end of the last finished epoch (or the initial ones) are
            restored first; ``exc.history`` holds the rows so far.
        KeyboardInterrupt: re-raised after restoring the weights of the last finished epoch.
    """
    x_train, y_train = _check_pair("train_data", train_data)
    callbacks = _check_callbacks(callbacks)
    _check_optimizer_params(model, optimizer)
    _check_sizes(epochs, batch_size, val_split, val_data)
    engine = make_engine(
        backend,
        model,
        loss,
        optimizer,
        seed=seed,
        device=device,
        batch_size=batch_size,
        compile_model=compile_model,
    )
    num_classes = num_classes_of(y_train)

    train_batches = TrainBatches(x_train, y_train, batch_size, seed=seed, val_split=val_split)
    loader, augment_rng = train_batches.loader, train_batches.rngs["augment"]
    val_data = train_batches.val_data if val_split > 0 else val_data
    if engine.is_main:
        _warn_unusual_sizes(len(x_train), len(loader.x), val_split, batch_size, epochs)
    x_val, y_val = _check_pair("val_data", val_data) if val_data is not None else (None, None)

    # Every random stream, by name: what a checkpoint saves and a resume restores.
    rngs = {**train_batches.rngs, **layer_rngs(model)}
    history, first_epoch = History(), 1
    if initial_state is not None:
        restore_state(initial_state, model, optimizer, schedule, rngs)
        history, first_epoch = History(initial_state.history), initial_state.epoch + 1
        if initial_state.stopped:  # EarlyStopping had ended the run: nothing left to do
            first_epoch = epochs + 1
    # Only the main process runs the callbacks (they write files) and shows progress.
    callbacks = list(callbacks) if engine.is_main else []
    ctx = TrainContext(model=model, optimizer=optimizer, history=history, epochs=epochs)
    progress = make_progress(verbose and engine.is_main, epochs)
    last_good = model.state_dict()  # copies: what we restore on divergence or Ctrl-C
    for cb in callbacks:
        cb.on_train_begin(ctx)
    if initial_state is not None:
        restore_callbacks(initial_state, callbacks)  # after on_train_begin, which resets them
    completed = False
    try:
        engine.begin()
        for epoch in range(first_epoch, epochs + 1):
            ctx.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, ctx)
            lr = float(optimizer.lr)  # the rate used for this epoch (schedules change it after)
            engine.begin_epoch(epoch, lr)
            start = time.perf_counter()
            progress.start_epoch(epoch, len(loader))
            batches = augmented(loader, transform, augment_rng, overlap=overlap)
            step = _EpochStep(engine, model, callbacks, ctx, progress, last_good, num_classes)
            train_loss, train_accuracy, speed = step.train(batches, epoch, lr, start)
            val_loss, val_accuracy = math.nan, math.nan
            if x_val is not None and y_val is not None:
                val_loss, val_accuracy = engine.evaluate(x_val, y_val, batch_size)
            engine.end_epoch()  # the cnnlab model and optimizer hold the epoch's result
            history.append(
                epoch=epoch,
                train_loss=train_loss,
                train_accuracy=train_accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=lr,
                seconds=time.perf_counter() - start,
            )
            row = history.last
            progress.end_epoch(row, speed, engine.epoch_note())
            metric = row["train_loss"] if math.isnan(val_loss) else val_loss  # for ReduceLROnPlateau
            _end_epoch(epoch, row, metric, schedule, callbacks, ctx, engine)
            last_good = model.state_dict()
            if checkpoint_fn is not None and engine.is_main:
                state = capture_state(
                    epoch, model, optimizer, schedule, history, rngs, ctx.stop_training, callbacks
                )
                checkpoint_fn(state)
            if ctx.stop_training:
                break
        completed = True
    except KeyboardInterrupt:
        model.load_state_dict(last_good)  # never keep the weights of a half-finished epoch
        raise
    finally:
        progress.close()
        engine.end(completed)
    for cb in callbacks:
        cb.on_train_end(ctx)
    return history


def _check_sizes(epochs: int, batch_size: int, val_split: float, val_data: Any) -> None:
    """``fit``'s counts and its validation options, each named when wrong."""
    check_int("fit", "epochs", epochs)
    check_int("fit", "batch_size", batch_size)
    if not 0.0 <= val_split < 1.0:
        raise arg_error("fit", "val_split", "a float in [0, 1)", val_split)
    if val_split > 0 and val_data is not None:
        raise arg_error("fit", "val_split", "0 when val_data is given (use one or the other)", val_split)


def _warn_unusual_sizes(n_all: int, n_fit: int, val_split: float, batch_size: int, epochs: int) -> None:
    """Warn (at ``fit``'s caller) about a split or a batch that is legal but likely a slip."""
    if val_split > 0.5:  # e.g. --val-split 0.9 meant as 0.09 or as "90% for training"
        warnings.warn(
            f"fit: val_split={val_split} holds out {n_all - n_fit} of the {n_all} examples for "
            f"validation and trains on {n_fit}; 0.1-0.2 is usual",
            stacklevel=3,
        )
    if batch_size > n_fit >= 256:  # a slip (--batch-size 12800), not a tiny set
        warnings.warn(
            f"fit: batch_size={batch_size} is more than the {n_fit} training examples: every epoch "
            f"is one optimizer step ({epochs} in all), too few to learn much; a batch of 32-256 "
            f"takes {math.ceil(n_fit / 256)}-{math.ceil(n_fit / 32)} steps per epoch",
            stacklevel=3,
        )


class _EpochStep:
    """One epoch's training pass of ``fit``, with the divergence rules on its losses."""

    def __init__(
        self,
        engine: Any,
        model: Any,
        callbacks: list[Any],
        ctx: TrainContext,
        progress: Any,
        last_good: dict[str, np.ndarray],
        num_classes: int,
    ) -> None:
        self.engine, self.model, self.callbacks, self.ctx = engine, model, callbacks, ctx
        self.progress, self.last_good, self.num_classes = progress, last_good, num_classes

    def train(
        self, batches: Iterable[tuple[np.ndarray, np.ndarray]], epoch: int, lr: float, start: float
    ) -> tuple[float, float, float]:
        """``(mean train loss, train accuracy, images/s)`` of the epoch.

        Raises:
            TrainingDiverged: a batch loss is NaN/inf, or the mean loss rose far above its
                start; the weights of ``last_good`` are restored first.
        """
        history = self.ctx.history
        # Where the run started, for the divergence rule: epoch 1's mean loss once the
        # History has it (so a resumed run decides alike), else the first batch's loss.
        start_loss = history.rows[0]["train_loss"] if history.rows else None
        seen, loss_sum, correct = 0, 0.0, 0.0
        for batch, (xb, yb) in enumerate(batches):
            batch_loss, batch_correct = self.engine.train_step(xb, yb)
            if not math.isfinite(batch_loss):
                self.model.load_state_dict(self.last_good)
                raise nan_diverged(batch_loss, epoch, batch, lr, history)
            if start_loss is None:
                start_loss = batch_loss
            seen += len(xb)
            loss_sum += batch_loss * len(xb)
            correct += batch_correct
            self.progress.update(
                loss_sum / seen, correct / seen, seen / max(time.perf_counter() - start, 1e-9)
            )
            for cb in self.callbacks:
                cb.on_batch_end(batch, {"batch": batch, "loss": batch_loss, "size": len(xb)}, self.ctx)
        train_seconds = time.perf_counter() - start
        train_loss = loss_sum / seen
        reference = loss_reference(self.num_classes, start_loss if start_loss is not None else math.inf)
        if train_loss > DIVERGENCE_FACTOR * reference:  # finite, but far above its start
            self.model.load_state_dict(self.last_good)
            raise rise_diverged(train_loss, reference, epoch, lr, history)
        return train_loss, correct / seen, seen / max(train_seconds, 1e-9)


def _end_epoch(
    epoch: int,
    row: dict[str, Any],
    metric: float,
    schedule: Any,
    callbacks: list[Any],
    ctx: TrainContext,
    engine: Any,
) -> None:
    """After an epoch's row is recorded: the schedule steps, the callbacks see the row, and
    under torchrun every process takes rank 0's decisions (stop, lr)."""
    if schedule is not None:
        _step_schedule(schedule, metric)
    for cb in callbacks:
        cb.on_epoch_end(epoch, row, ctx)
    engine.share_decisions(ctx)  # under torchrun: rank 0's stop and lr, everywhere


class TrainBatches:
    """The training batches of ``fit``: the seeded split, the shuffled loader, the random streams.

    ``fit`` trains on these; ``cnnlab bench --recipe`` times steps on them, so both see the
    same batches. Three independent generators are spawned from ``seed`` (changing the
    augmentation never changes the shuffling order): ``split`` holds out the validation
    part (stratified by class), ``shuffle`` orders every epoch, ``augment`` is handed to the
    transform (``augmented``).

    Args:
        x_train: inputs (N, C, H, W); y_train: labels (N,).
        batch_size: samples per optimizer step.
        seed: seeds the three generators.
        val_split: hold out this share of the data for validation (0: none).

    Attributes:
        loader: a shuffling ``DataLoader`` over the training part, (B, C, H, W) batches.
        val_data: the held-out ``(x, y)``, or None when ``val_split`` is 0.
        rngs: ``{"split", "shuffle", "augment"}`` -> Generator (a checkpoint saves them).

    Example:
        >>> x, y = np.zeros((20, 1, 2, 2), np.float32), np.arange(20) % 2
        >>> b = TrainBatches(x, y, batch_size=8, seed=0, val_split=0.1)
        >>> len(b.loader), len(b.val_data[0]), sorted(b.rngs)
        (3, 2, ['augment', 'shuffle', 'split'])
    """

    def __init__(
        self, x_train: np.ndarray, y_train: np.ndarray, batch_size: int, *, seed: int, val_split: float = 0.0
    ) -> None:
        seeds = np.random.SeedSequence(seed).spawn(3)
        split_rng, shuffle_rng, augment_rng = (np.random.default_rng(s) for s in seeds)
        self.val_data: tuple[np.ndarray, np.ndarray] | None = None
        if val_split > 0:
            train_idx, val_idx = stratified_split(y_train, val_split, split_rng)
            self.val_data = (x_train[val_idx], y_train[val_idx])
            x_train, y_train = x_train[train_idx], y_train[train_idx]
        self.loader = DataLoader(x_train, y_train, batch_size, shuffle=True, rng=shuffle_rng)
        self.rngs = {"split": split_rng, "shuffle": shuffle_rng, "augment": augment_rng}


def augmented(
    loader: Iterable[tuple[np.ndarray, np.ndarray]],
    transform: Transform | None,
    rng: np.random.Generator,
    *,
    overlap: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``loader``'s ``(xb, yb)`` batches, ``xb`` augmented by ``transform(xb, rng)``.

    What every ``engine.train_step`` of ``fit`` gets: the whole (global) batch is augmented,
    (B, C, H, W) in and out; without a transform the batches pass unchanged. ``overlap``:
    the next batch is taken and augmented in a background thread while the caller trains
    on this one (``cnnlab.data.prefetch``): the same draws in the same order, the same batches.
    """
    batches = _augment(loader, transform, rng)
    return prefetch(batches) if overlap else batches


def _augment(
    loader: Iterable[tuple[np.ndarray, np.ndarray]], transform: Transform | None, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for xb, yb in loader:
        yield (xb if transform is None else transform(xb, rng)), yb


def _step_schedule(schedule: Any, metric: float) -> None:
    """Step a per-epoch schedule; ``ReduceLROnPlateau``-style ones (``step(metric)``) get ``metric``."""
    params = inspect.signature(schedule.step).parameters.values()
    takes_metric = any(
        p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in params
    )
    if takes_metric:
        schedule.step(metric)
    else:
        schedule.step()


def _check_pair(name: str, data: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise arg_error("fit", name, "an (x, y) tuple of arrays", type(data).__name__)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y) or len(x) == 0:
        raise arg_error(
            "fit", name, "x and y of the same, non-zero length", f"{len(x)} inputs, {len(y)} labels"
        )
    _check_labels(name, y)
    return x, y


def _check_labels(name: str, y: np.ndarray) -> None:
    """Labels are numbers, and finite (issue 23 item 8: NumPy's UFuncTypeError before)."""
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"fit: the labels y of `{name}` must be integer class indices 0..K-1 (map class names "
            "to indices first, e.g. names, y = np.unique(labels, return_inverse=True)). Received: "
            f"labels of dtype {y.dtype}, the first {y.flat[0]!r}"
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        bad = np.flatnonzero(~np.isfinite(y))
        raise ValueError(
            f"fit: the labels y of `{name}` must be finite class indices 0..K-1. Received: "
            f"{len(bad)} NaN/inf label(s), the first at index {int(bad[0])}"
        )


def _check_callbacks(callbacks: Any) -> list[Any]:
    """``callbacks`` as a list: one ``Callback`` is taken as a list of one."""
    if isinstance(callbacks, Callback):
        return [callbacks]
    if isinstance(callbacks, str | bytes) or not isinstance(callbacks, Iterable):
        raise arg_error("fit", "callbacks", "a list of Callback objects (or one Callback)", callbacks)
    return list(callbacks)


def _check_optimizer_params(model: Any, optimizer: Any) -> None:
    """Refuse an optimizer built on parameters that are not ``model``'s.

    Its step would then read gradients nobody computes: "no gradient for weight ... call
    backward after forward" named the wrong cause (issue 23 item 8). A subset of the
    model's parameters (fine-tuning the head only) is fine.
    """
    params, own = getattr(optimizer, "params", None), getattr(model, "parameters", None)
    if params is None or own is None:
        return
    mine = set(own())
    foreign = [p for p in params if p not in mine]
    if foreign:
        raise ValueError(
            f"fit: the optimizer {type(optimizer).__name__} was built on parameters that are not "
            f"the model's ({len(foreign)} of its {len(params)}, the first `{foreign[0].path}` of a "
            f"{foreign[0].layer.name} that the model does not hold). Build it on this model: "
            f"{type(optimizer).__name__}(model.parameters(), ...)"
        )
