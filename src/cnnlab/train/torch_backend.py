"""The PyTorch backend: ``fit``'s training loop, with the arithmetic done by PyTorch.

``cnnlab train --backend torch [--device cpu|cuda]`` calls ``fit_torch`` instead of
``cnnlab.train.fit.fit``. Everything around the arithmetic is cnnlab's own, so both
backends train on the same batches in the same order (the same seeded split, shuffling and
augmentation generators) and write the same run folder.

Design: the cnnlab model, optimizer and schedule stay the source of truth between epochs.

1. At the start, ``to_torch`` copies the model into an equivalent ``nn.Module`` and
   ``torch_optimizer`` builds ``torch.optim.SGD/Adam/AdamW`` with the same hyperparameters
   (and the same per-parameter state when resuming).
2. Each epoch sets the torch learning rate from ``optimizer.lr``, so every cnnlab schedule
   and callback that sets ``lr`` works unchanged, and trains the module batch by batch.
3. At the end of each epoch the weights and the optimizer state are copied back into the
   cnnlab model and optimizer; the History row, schedule, callbacks (EarlyStopping,
   CSVLogger, ModelCheckpoint, ...) and checkpoints then see an ordinary cnnlab model.
   A NaN loss or Ctrl-C in the middle of an epoch leaves the cnnlab model at the end of the
   last finished epoch, as ``fit`` does.

Under ``torchrun`` the module is wrapped in ``DistributedDataParallel`` and each process
trains on its shard of every global batch (see ``cnnlab.train.distributed``).

Differences from the NumPy engine: Dropout masks come from PyTorch's generator (seeded from
``seed`` and the epoch number, so runs and resumes repeat); under torchrun, BatchNorm
normalizes with the statistics of each process's shard (no SyncBatchNorm), so models with
BatchNorm match single-process training only approximately.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cnnlab.data.loader import DataLoader, stratified_split
from cnnlab.errors import CnnlabError, arg_error
from cnnlab.interop.torch_modules import import_torch
from cnnlab.train.callbacks import Callback, TrainContext
from cnnlab.train.checkpoint import TrainState, capture_state, layer_rngs, restore_state
from cnnlab.train.distributed import DistInfo, check_batch_size, init_process_group, shard
from cnnlab.train.fit import Transform, _check_pair, _diverged, _step_schedule
from cnnlab.train.history import History
from cnnlab.train.progress import make_progress

DEVICES = ("cpu", "cuda")


def fit_torch(
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
    device: str = "cpu",
) -> History:
    """Train ``model`` with PyTorch; the arguments and the result are those of ``fit``.

    Args:
        device: "cpu" or "cuda" (under torchrun: the GPU ``LOCAL_RANK``).
        (the others: see ``cnnlab.train.fit.fit``; ``batch_size`` is the global batch.)

    Returns:
        The History; ``model`` and ``optimizer`` hold the trained weights and state.

    Raises:
        CnnlabError: torch missing, no CUDA for ``device="cuda"``, a loss other than
            SoftmaxCrossEntropy, or a batch size the torchrun processes cannot share.
        TrainingDiverged: the loss became NaN/inf (the model keeps the last epoch's weights).
    """
    torch = import_torch()
    info = DistInfo.from_env()
    dev = resolve_device(device, info)
    x_train, y_train = _check_pair("train_data", train_data)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise arg_error("fit_torch", "epochs", "a positive int", epochs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise arg_error("fit_torch", "batch_size", "a positive int", batch_size)
    if not 0.0 <= val_split < 1.0:
        raise arg_error("fit_torch", "val_split", "a float in [0, 1)", val_split)
    if val_split > 0 and val_data is not None:
        raise arg_error(
            "fit_torch", "val_split", "0 when val_data is given (use one or the other)", val_split
        )
    check_batch_size(batch_size, info)
    smoothing = label_smoothing_of(loss)

    # The same generators, split and loader as fit: the same batches in the same order.
    seeds = np.random.SeedSequence(seed).spawn(3)
    split_rng, shuffle_rng, augment_rng = (np.random.default_rng(s) for s in seeds)
    if val_split > 0:
        train_idx, val_idx = stratified_split(y_train, val_split, split_rng)
        val_data = (x_train[val_idx], y_train[val_idx])
        x_train, y_train = x_train[train_idx], y_train[train_idx]
    x_val, y_val = _check_pair("val_data", val_data) if val_data is not None else (None, None)
    loader = DataLoader(x_train, y_train, batch_size, shuffle=True, rng=shuffle_rng)
    rngs = {"split": split_rng, "shuffle": shuffle_rng, "augment": augment_rng, **layer_rngs(model)}
    history, first_epoch = History(), 1
    if initial_state is not None:
        restore_state(initial_state, model, optimizer, schedule, rngs)
        history, first_epoch = History(initial_state.history), initial_state.epoch + 1
        if initial_state.stopped:
            first_epoch = epochs + 1

    module = to_torch_on(model, dev)
    torch_opt = torch_optimizer(optimizer, module)
    net, dist = module, None
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        dist = init_process_group(info, dev.type)
        net = DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)

    # Only rank 0 runs the callbacks (they write files); it broadcasts their decisions.
    own_callbacks = list(callbacks) if info.is_main else []
    ctx = TrainContext(model=model, optimizer=optimizer, history=history, epochs=epochs)
    progress = make_progress(verbose and info.is_main, epochs)
    for cb in own_callbacks:
        cb.on_train_begin(ctx)
    try:
        for epoch in range(first_epoch, epochs + 1):
            ctx.epoch = epoch
            for cb in own_callbacks:
                cb.on_epoch_begin(epoch, ctx)
            lr = float(optimizer.lr)
            for group in torch_opt.param_groups:
                group["lr"] = lr  # the cnnlab schedule decides, torch follows
            # Dropout draws from torch's global generator: seed it per epoch so a run (and a
            # resumed run) repeats exactly.
            torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
            start = time.perf_counter()
            progress.start_epoch(epoch, len(loader))

            # ---- train ----
            net.train()
            seen, loss_sum, correct, steps = 0, 0.0, 0.0, 0
            for batch, (xb, yb) in enumerate(loader):
                if transform is not None:
                    xb = transform(xb, augment_rng)  # the whole global batch, as fit does
                rows = shard(len(xb), info.rank, info.world_size)
                x, y = to_tensors(xb[rows], yb[rows], model.dtype, dev)
                # DDP averages gradients over processes, so scale each one's summed loss by
                # world_size / global batch: the average is then the global batch's mean.
                stats = train_step(
                    net, torch_opt, x, y, scale=info.world_size / len(xb), label_smoothing=smoothing
                )
                if dist is not None:
                    dist.all_reduce(stats)  # (loss sum, correct) over the global batch
                batch_loss_sum, batch_correct = stats.tolist()
                batch_loss = batch_loss_sum / len(xb)
                if not math.isfinite(batch_loss):
                    raise _diverged(batch_loss, epoch, batch, lr, history)
                steps += 1
                seen += len(xb)
                loss_sum += batch_loss_sum
                correct += batch_correct
                progress.update(
                    loss_sum / seen, correct / seen, seen / max(time.perf_counter() - start, 1e-9)
                )
                for cb in own_callbacks:
                    cb.on_batch_end(batch, {"batch": batch, "loss": batch_loss, "size": len(xb)}, ctx)
            train_seconds = time.perf_counter() - start

            # ---- validate (every process, on the whole validation set: no communication) ----
            val_loss, val_accuracy = math.nan, math.nan
            if x_val is not None and y_val is not None:
                val_loss, val_accuracy = validate_torch(module, x_val, y_val, batch_size, smoothing)

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
            copy_back(module, model, torch_opt, optimizer, steps)
            if schedule is not None:
                _step_schedule(schedule, row["train_loss"] if math.isnan(val_loss) else val_loss)
            for cb in own_callbacks:
                cb.on_epoch_end(epoch, row, ctx)
            if dist is not None:  # rank 0's callbacks may stop the run or change the lr
                decided = torch.tensor(
                    [float(ctx.stop_training), float(optimizer.lr)], dtype=torch.float64, device=dev
                )
                dist.broadcast(decided, src=0)
                ctx.stop_training, optimizer.lr = bool(decided[0].item()), float(decided[1].item())
            if checkpoint_fn is not None and info.is_main:
                checkpoint_fn(
                    capture_state(epoch, model, optimizer, schedule, history, rngs, ctx.stop_training)
                )
            if ctx.stop_training:
                break
    finally:
        progress.close()
    if dist is not None:
        # Let gloo's worker threads finish and free their last work first: a work that
        # holds a tensor needs the GIL to be freed, and tearing down the group while one is
        # pending deadlocks (the main thread joins the worker while holding the GIL).
        # A barrier is queued after every earlier work and holds no tensor.
        dist.barrier()
        del net
        dist.destroy_process_group()
    for cb in own_callbacks:
        cb.on_train_end(ctx)
    return history


def resolve_device(device: str, info: DistInfo | None = None) -> Any:
    """The ``torch.device`` for "cpu" or "cuda"; a clear error when CUDA is asked but absent."""
    torch = import_torch()
    if device not in DEVICES:
        raise arg_error("train", "device", f"one of {', '.join(DEVICES)}", device)
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise CnnlabError(
            f"--device cuda: PyTorch sees no CUDA GPU (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda or 'none'}). Use --device cpu, or install a CUDA build of PyTorch "
            "(https://pytorch.org/get-started/locally/)"
        )
    index = info.local_rank if info is not None and info.distributed else torch.cuda.current_device()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def to_torch_on(model: Any, device: Any) -> Any:
    """``to_torch(model)`` moved to ``device``."""
    from cnnlab.interop.torch import to_torch

    return to_torch(model).to(device)


def torch_optimizer(optimizer: Any, module: Any) -> Any:
    """``torch.optim.SGD/Adam/AdamW`` with ``optimizer``'s settings and state, over ``module``.

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.optim.sgd import SGD
        >>> from cnnlab.interop.torch import to_torch
        >>> layer = Dense(3, 2, rng=0)
        >>> opt = torch_optimizer(SGD(layer.parameters(), lr=0.1, momentum=0.9), to_torch(layer))
        >>> type(opt).__name__, opt.param_groups[0]["momentum"]
        ('SGD', 0.9)
    """
    torch = import_torch()
    from cnnlab.optim.adam import Adam, AdamW
    from cnnlab.optim.sgd import SGD

    params = list(module.parameters())
    lr = float(optimizer.lr)
    if isinstance(optimizer, Adam):  # AdamW too (a subclass)
        cls = torch.optim.AdamW if isinstance(optimizer, AdamW) else torch.optim.Adam
        torch_opt = cls(
            params, lr=lr, betas=optimizer.betas, eps=optimizer.eps, weight_decay=optimizer.weight_decay
        )
    elif isinstance(optimizer, SGD):
        torch_opt = torch.optim.SGD(
            params,
            lr=lr,
            momentum=optimizer.momentum,
            nesterov=optimizer.nesterov,
            weight_decay=optimizer.weight_decay,
        )
    else:
        raise CnnlabError(
            f"--backend torch: no PyTorch optimizer for {type(optimizer).__name__}; use sgd, adam or adamw"
        )
    if optimizer.t > 0:  # resuming: the momentum / Adam moments continue where they were
        for name, p in module.named_parameters():
            saved = optimizer.state.get(name, {})
            state: dict[str, Any] = {
                k: torch.from_numpy(saved[k].copy()).to(p.device)
                for k in optimizer.buffer_names()
                if k in saved
            }
            if isinstance(optimizer, Adam):
                state["step"] = torch.tensor(float(optimizer.t))
            torch_opt.state[p] = state
    return torch_opt


def copy_back(module: Any, model: Any, torch_opt: Any, optimizer: Any, steps: int) -> None:
    """Copy the module's weights and the torch optimizer's state into the cnnlab objects."""
    model.load_state_dict({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    optimizer.t += steps
    for name, p in module.named_parameters():  # the same dotted names as cnnlab's Param.path
        state = torch_opt.state.get(p, {})
        for key in optimizer.buffer_names():
            if state.get(key) is not None:
                optimizer.state[name][key] = state[key].detach().cpu().numpy().copy()


def label_smoothing_of(loss: Any) -> float:
    """The one loss the torch backend runs: SoftmaxCrossEntropy (as ``F.cross_entropy``)."""
    from cnnlab.losses import SoftmaxCrossEntropy

    if not isinstance(loss, SoftmaxCrossEntropy):
        raise CnnlabError(f"--backend torch: only SoftmaxCrossEntropy is supported. Received: {loss!r}")
    return float(loss.label_smoothing)


def to_tensors(xb: np.ndarray, yb: np.ndarray, dtype: Any, device: Any) -> tuple[Any, Any]:
    """A NumPy batch as tensors on ``device``: inputs in the model's dtype, labels int64."""
    torch = import_torch()
    x = torch.from_numpy(np.ascontiguousarray(xb, dtype=dtype)).to(device)
    labels = yb.astype(np.int64) if yb.ndim == 1 else yb.astype(dtype)  # indices or probabilities
    return x, torch.from_numpy(np.ascontiguousarray(labels)).to(device)


def train_step(
    module: Any, optimizer: Any, x: Any, y: Any, *, scale: float | None = None, label_smoothing: float = 0.0
) -> Any:
    """One optimizer step on a batch of tensors: forward, cross-entropy, backward, step.

    The summed loss times ``scale`` (default ``1 / len(x)``: the mean, as cnnlab's loss) is
    differentiated, so DDP processes can each scale their shard by ``world_size / global batch``.

    Returns:
        A float64 tensor ``[sum of the per-example losses, number of correct predictions]``.
    """
    torch = import_torch()
    optimizer.zero_grad(set_to_none=True)
    logits = module(x)  # (B, K)
    loss_sum = torch.nn.functional.cross_entropy(logits, y, reduction="sum", label_smoothing=label_smoothing)
    (loss_sum * (1.0 / max(len(x), 1) if scale is None else scale)).backward()
    optimizer.step()
    target = y if y.ndim == 1 else y.argmax(dim=1)
    correct = (logits.detach().argmax(dim=1) == target).sum()
    return torch.stack([loss_sum.detach().to(torch.float64), correct.to(torch.float64)])


def validate_torch(
    module: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 256, label_smoothing: float = 0.0
) -> tuple[float, float]:
    """Mean loss and accuracy of a torch module on NumPy ``(x, y)``, in eval mode, batch by batch."""
    torch = import_torch()
    param = next(module.parameters())
    module.eval()
    loss_sum, correct = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = to_tensors(
                x[i : i + batch_size], y[i : i + batch_size], _numpy_dtype(param), param.device
            )
            logits = module(xb)  # (B, K)
            loss = torch.nn.functional.cross_entropy(
                logits, yb, reduction="sum", label_smoothing=label_smoothing
            )
            loss_sum += float(loss.item())
            target = yb if yb.ndim == 1 else yb.argmax(dim=1)
            correct += float((logits.argmax(dim=1) == target).sum().item())
    return loss_sum / len(x), correct / len(x)


def _numpy_dtype(tensor: Any) -> np.dtype:
    return np.dtype(str(tensor.dtype).removeprefix("torch."))
