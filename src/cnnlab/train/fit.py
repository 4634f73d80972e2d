"""fit: the training loop, top to bottom.

One epoch is: shuffle, then for every mini-batch forward -> loss -> backward -> optimizer
step; then validate in eval mode, record a History row, step the learning-rate schedule
and run the callbacks. Every random choice (validation split, shuffling, augmentation)
comes from generators spawned from ``seed``, so the same seed gives the same run, bit for
bit (given a model initialized from a seed too).

Resuming: ``checkpoint_fn`` receives a ``TrainState`` (weights, optimizer, schedule, every
generator's state, history) after each epoch; passing one back as ``initial_state``
continues the run as if it had never stopped: the final weights are bit-identical.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnlab.data.loader import DataLoader, stratified_split
from cnnlab.errors import CnnlabError, arg_error
from cnnlab.layers.fuse import fuse
from cnnlab.train.callbacks import Callback, TrainContext
from cnnlab.train.checkpoint import TrainState, capture_state, layer_rngs, restore_callbacks, restore_state
from cnnlab.train.history import History
from cnnlab.train.metrics import accuracy
from cnnlab.train.progress import make_progress

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class TrainingDiverged(CnnlabError):
    """The training loss became NaN or infinite; the last good weights were restored.

    Attributes:
        history: the History of the epochs that finished before the divergence.
        epoch: the epoch (from 1) in which the loss diverged.
        batch: the batch (from 0) in which the loss diverged.
    """

    def __init__(self, message: str, history: History, epoch: int, batch: int) -> None:
        super().__init__(message)
        self.history = history
        self.epoch = epoch
        self.batch = batch


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
        batch_size: samples per optimizer step.
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

    Returns:
        The History, one row per epoch that finished.

    Raises:
        TrainingDiverged: the loss became NaN/inf. The weights from the end of the last
            finished epoch (or the initial ones) are restored first; ``exc.history`` holds
            the rows so far.
        KeyboardInterrupt: re-raised after restoring the weights of the last finished epoch.
    """
    x_train, y_train = _check_pair("train_data", train_data)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise arg_error("fit", "epochs", "a positive int", epochs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise arg_error("fit", "batch_size", "a positive int", batch_size)
    if not 0.0 <= val_split < 1.0:
        raise arg_error("fit", "val_split", "a float in [0, 1)", val_split)
    if val_split > 0 and val_data is not None:
        raise arg_error("fit", "val_split", "0 when val_data is given (use one or the other)", val_split)

    # Independent streams: changing the augmentation never changes the shuffling order.
    seeds = np.random.SeedSequence(seed).spawn(3)
    split_rng, shuffle_rng, augment_rng = (np.random.default_rng(s) for s in seeds)
    if val_split > 0:
        train_idx, val_idx = stratified_split(y_train, val_split, split_rng)
        val_data = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    x_val, y_val = _check_pair("val_data", val_data) if val_data is not None else (None, None)
    loader = DataLoader(x_train, y_train, batch_size, shuffle=True, rng=shuffle_rng)

    # Every random stream, by name: what a checkpoint saves and a resume restores.
    rngs = {"split": split_rng, "shuffle": shuffle_rng, "augment": augment_rng, **layer_rngs(model)}
    history, first_epoch = History(), 1
    if initial_state is not None:
        restore_state(initial_state, model, optimizer, schedule, rngs)
        history, first_epoch = History(initial_state.history), initial_state.epoch + 1
        if initial_state.stopped:  # EarlyStopping had ended the run: nothing left to do
            first_epoch = epochs + 1
    ctx = TrainContext(model=model, optimizer=optimizer, history=history, epochs=epochs)
    progress = make_progress(verbose, epochs)
    last_good = model.state_dict()  # copies: what we restore on NaN loss or Ctrl-C
    for cb in callbacks:
        cb.on_train_begin(ctx)
    if initial_state is not None:
        restore_callbacks(initial_state, callbacks)  # after on_train_begin, which resets them
    # The data needs no gradient: the first conv skips computing dL/dx (docs/performance.md).
    first: Any = model.layers[0] if getattr(model, "layers", None) else None
    first_flag = getattr(first, "needs_input_grad", None)
    if first_flag is not None:
        first.needs_input_grad = False
    # Steps run on a view with ReLU -> MaxPool2D pairs fused (same arrays; cnnlab.layers.fuse).
    step_model = fuse(model)
    try:
        for epoch in range(first_epoch, epochs + 1):
            ctx.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, ctx)
            lr = float(optimizer.lr)  # the rate used for this epoch (schedules change it after)
            start = time.perf_counter()
            progress.start_epoch(epoch, len(loader))

            # ---- train ----
            model.train()
            seen, loss_sum, correct = 0, 0.0, 0.0
            for batch, (xb, yb) in enumerate(loader):
                if transform is not None:
                    xb = transform(xb, augment_rng)
                logits = step_model.forward(xb)  # (B, K)
                batch_loss = float(loss.forward(logits, yb))
                if not math.isfinite(batch_loss):
                    model.load_state_dict(last_good)
                    raise _diverged(batch_loss, epoch, batch, lr, history)
                step_model.backward(loss.backward())  # writes every layer's grads
                optimizer.step()
                seen += len(xb)
                loss_sum += batch_loss * len(xb)
                correct += accuracy(logits, yb) * len(xb)
                images_per_s = seen / max(time.perf_counter() - start, 1e-9)
                progress.update(loss_sum / seen, correct / seen, images_per_s)
                for cb in callbacks:
                    cb.on_batch_end(batch, {"batch": batch, "loss": batch_loss, "size": len(xb)}, ctx)
            train_seconds = time.perf_counter() - start

            # ---- validate ----
            val_loss, val_accuracy = math.nan, math.nan
            if x_val is not None and y_val is not None:
                val_loss, val_accuracy = validate(model, loss, x_val, y_val, batch_size)

            history.append(
                epoch=epoch,
                train_loss=loss_sum / seen,
                train_accuracy=correct / seen,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=lr,
                seconds=time.perf_counter() - start,
            )
            row = history.last
            progress.end_epoch(row, seen / max(train_seconds, 1e-9))
            if schedule is not None:
                _step_schedule(schedule, row["train_loss"] if math.isnan(val_loss) else val_loss)
            for cb in callbacks:
                cb.on_epoch_end(epoch, row, ctx)
            last_good = model.state_dict()
            if checkpoint_fn is not None:
                state = capture_state(
                    epoch, model, optimizer, schedule, history, rngs, ctx.stop_training, callbacks
                )
                checkpoint_fn(state)
            if ctx.stop_training:
                break
    except KeyboardInterrupt:
        model.load_state_dict(last_good)  # never keep the weights of a half-finished epoch
        raise
    finally:
        progress.close()
        if first_flag is not None:
            first.needs_input_grad = first_flag
    for cb in callbacks:
        cb.on_train_end(ctx)
    return history


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


def _diverged(value: float, epoch: int, batch: int, lr: float, history: History) -> TrainingDiverged:
    restored = f"the end of epoch {epoch - 1}" if epoch > 1 else "before training (the initial weights)"
    return TrainingDiverged(
        f"training diverged: the loss became {value} in epoch {epoch}, batch {batch} (lr={lr:g}). "
        f"The weights from {restored} were restored. "
        f"Advice: lower the learning rate, e.g. --lr {lr / 10:g}; check the inputs are normalized "
        "and contain no NaN.",
        history,
        epoch,
        batch,
    )


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
    return x, y
