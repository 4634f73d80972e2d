"""The PyTorch engine: ``fit``'s loop, with the arithmetic done by PyTorch (CPU, CUDA, torchrun).

``fit(..., backend="torch", device="cpu"|"cuda")`` (``cnnlab train --backend torch``) trains
with this engine. Everything around the arithmetic is ``fit``'s own, so both engines train
on the same batches in the same order (the same seeded split, shuffling and augmentation
generators), run the same callbacks and write the same run folder and checkpoints.

Design: the cnnlab model, optimizer and schedule stay the source of truth between epochs.

1. ``begin``: ``to_torch`` copies the model (already resumed, if resuming) into an
   equivalent ``nn.Module`` and ``torch_optimizer`` builds ``torch.optim.SGD/Adam/AdamW``
   with the same hyperparameters and the same per-parameter state.
2. ``begin_epoch`` sets the torch learning rate from ``optimizer.lr``, so every cnnlab
   schedule and callback that sets ``lr`` works unchanged; ``train_step`` trains the module.
3. ``end_epoch`` copies the weights and the optimizer state back into the cnnlab model and
   optimizer; the History row, schedule, callbacks and checkpoints then see an ordinary
   cnnlab model. A divergence or Ctrl-C in the middle of an epoch leaves the cnnlab model
   at the end of the last finished epoch, as with the NumPy engine.

Under ``torchrun`` the module is wrapped in ``DistributedDataParallel`` and each process
trains on its shard of every global batch (see ``cnnlab.train.loop.distributed``). Only rank 0
runs the callbacks, shows progress and writes checkpoints; ``share_decisions`` broadcasts
its callbacks' decisions (stop, learning rate) to the other processes.

Speed (issue 25, docs/performance.md "the torch backend as the fast path"):

- Memory layout: ``layout="auto"`` trains conv nets on the CPU in float32 in channels_last
  (NHWC: oneDNN's direct convolutions; 0.74-0.82x the NCHW step in CPU time on the fashion
  recipe's vgg and the zoo resnet), everything else (float64 for parity with the NumPy
  engine, CUDA, nets without Conv2d) in the default NCHW. A rule, not a timed probe: a
  probe could choose differently in a resumed run and break bit-identical resumes.
  The weights come back to cnnlab contiguous (NCHW) either way.
- ``compile_model=True`` (``cnnlab train --compile``): ``torch.compile`` of the module; the
  seconds spent compiling are shown on the epoch's progress line; where compiling fails
  (no C++ compiler, an unsupported layer) one line says so and training goes on eagerly
  from the same weights.
- The next batch is prepared while a step runs by ``fit`` (``overlap``), for every engine.
- Adam and AdamW run fused (one kernel for all parameters, ``torch_optimizer``).

Differences from the NumPy engine: Dropout masks come from PyTorch's generator (seeded from
``seed`` and the epoch number, so runs and resumes repeat); under torchrun, BatchNorm
normalizes with the statistics of each process's shard (no SyncBatchNorm), so models with
BatchNorm match single-process training only approximately.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, arg_error
from cnnlab.interop.torch import to_torch
from cnnlab.interop.torch_modules import import_torch
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.adam import Adam, AdamW
from cnnlab.optim.sgd import SGD
from cnnlab.train.loop.distributed import DistInfo, check_batch_size, init_process_group, shard
from cnnlab.train.loop.engines.base import DEVICES, Engine

#: ``TorchEngine(layout=...)``: "auto" (the rule of ``choose_layout``), or one of these.
LAYOUTS = ("auto", "nchw", "channels_last")


class TorchEngine(Engine):
    """Train a PyTorch copy of a cnnlab model; copy it back after every epoch.

    Args:
        model, loss, optimizer: the cnnlab objects (``loss`` must be SoftmaxCrossEntropy;
            ``optimizer`` SGD, Adam or AdamW).
        seed: seeds PyTorch's generator (Dropout) per epoch.
        device: "cpu" or "cuda" (under torchrun: the GPU ``LOCAL_RANK``).
        batch_size: the global batch, checked to divide among the torchrun processes.
        compile_model: ``torch.compile`` the module (eager, with a one-line notice, if it fails).
        layout: "auto" (``choose_layout``), "nchw" or "channels_last".

    Raises:
        CnnlabError: torch missing, no CUDA for ``device="cuda"``, a loss other than
            SoftmaxCrossEntropy, or a batch size the torchrun processes cannot share.
    """

    def __init__(
        self,
        model: Any,
        loss: Any,
        optimizer: Any,
        *,
        seed: int,
        device: str,
        batch_size: int,
        compile_model: bool = False,
        layout: str = "auto",
    ) -> None:
        self.torch = import_torch()
        if layout not in LAYOUTS:
            raise arg_error("TorchEngine", "layout", f"one of {', '.join(LAYOUTS)}", layout)
        self.info = DistInfo.from_env()
        self.device = resolve_device(device, self.info)
        self.smoothing = label_smoothing_of(loss)
        check_batch_size(batch_size, self.info)
        self.model, self.optimizer, self.seed = model, optimizer, seed
        self.is_main = self.info.is_main
        self.module: Any = None
        self.net: Any = None  # the module, or its DistributedDataParallel wrapper
        self.torch_opt: Any = None
        self.dist: Any = None
        self.steps = 0
        self.layout = layout  # "auto" until begin() decides
        self.compile_model = compile_model
        self.eager: Any = None  # what self.net falls back to if compiling fails
        self.compiled_shapes: set[tuple[int, ...]] = set()  # input shapes compiled so far
        self.compile_seconds = 0.0  # spent compiling in this epoch (its progress line shows it)
        self.frozen: list[Any] = []  # the torch modules of the model's frozen layers

    def begin(self) -> None:
        self.module = to_torch_on(self.model, self.device)
        self.frozen = freeze_like(self.model, self.module)
        self.layout = choose_layout(self.layout, self.module, self.device, self.model.dtype)
        if self.layout == "channels_last":
            self.module = self.module.to(memory_format=self.torch.channels_last)  # 4-D weights NHWC
        self.torch_opt = torch_optimizer(self.optimizer, self.module)
        self.net = self.module
        if self.info.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.dist = init_process_group(self.info, self.device.type)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.module, device_ids=ids)
        if self.compile_model:
            self.eager, self.net = self.net, self.torch.compile(self.net)

    def begin_epoch(self, epoch: int, lr: float) -> None:
        for group in self.torch_opt.param_groups:
            group["lr"] = lr  # the cnnlab schedule decides, torch follows
        # Dropout draws from torch's global generator: seed it per epoch so a run (and a
        # resumed run) repeats exactly.
        self.torch.manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        self.net.train()
        for sub in self.frozen:  # a frozen layer computes as the trained model did (BatchNorm's statistics)
            sub.training = False
        self.steps = 0
        self.compile_seconds = 0.0

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float]:
        world = self.info.world_size
        rows = shard(len(xb), self.info.rank, world)
        x, y = to_tensors(xb[rows], yb[rows], self.model.dtype, self.device)
        if self.layout == "channels_last" and x.ndim == 4:
            x = x.contiguous(memory_format=self.torch.channels_last)  # (B, C, H, W) stored NHWC
        # DDP averages gradients over processes, so scale each one's summed loss by
        # world_size / global batch: the average is then the global batch's mean.
        scale = world / len(xb)
        if self.eager is not None and tuple(x.shape) not in self.compiled_shapes:
            stats = self._compiling_step(x, y, scale)  # a new shape: torch.compile traces it now
        else:
            stats = train_step(self.net, self.torch_opt, x, y, scale=scale, label_smoothing=self.smoothing)
        if self.dist is not None:
            self.dist.all_reduce(stats)  # (loss sum, correct) over the global batch
        self.steps += 1
        loss_sum, correct = stats.tolist()
        return loss_sum / len(xb), correct

    def _compiling_step(self, x: Any, y: Any, scale: float) -> Any:
        """A step that compiles first: timed for the progress line; eager if compiling fails.

        Nothing is updated before the optimizer's step, the last thing a step does, so after
        a failure the eager step starts from the same weights (and the same torch RNG state).
        """
        rng_state = self.torch.get_rng_state()
        start = time.perf_counter()
        try:
            stats = train_step(self.net, self.torch_opt, x, y, scale=scale, label_smoothing=self.smoothing)
        except Exception as error:  # a missing compiler, an unsupported op: train eagerly
            first = (str(error).strip().splitlines() or [""])[0][:200]
            if self.is_main:
                print(
                    f"cnnlab: --compile: torch.compile failed ({type(error).__name__}: {first}); "
                    "training without compiling",
                    file=sys.stderr,
                    flush=True,
                )
            self.net, self.eager = self.eager, None
            self.torch.set_rng_state(rng_state)
            return train_step(self.net, self.torch_opt, x, y, scale=scale, label_smoothing=self.smoothing)
        self.compile_seconds += time.perf_counter() - start
        self.compiled_shapes.add(tuple(x.shape))
        return stats

    def epoch_note(self) -> str:
        """The seconds ``torch.compile`` took in this epoch, for its progress line."""
        return f"torch.compile {self.compile_seconds:.1f}s" if self.compile_seconds else ""

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
        # Every process, on the whole validation set: no communication.
        return validate_torch(self.module, x, y, batch_size, self.smoothing)

    def end_epoch(self) -> None:
        copy_back(self.module, self.model, self.torch_opt, self.optimizer, self.steps)

    def share_decisions(self, ctx: Any) -> None:
        if self.dist is None:
            return
        # Rank 0's callbacks may stop the run or change the lr: every process follows.
        decided = self.torch.tensor(
            [float(ctx.stop_training), float(ctx.optimizer.lr)], dtype=self.torch.float64, device=self.device
        )
        self.dist.broadcast(decided, src=0)
        ctx.stop_training, ctx.optimizer.lr = bool(decided[0].item()), float(decided[1].item())

    def end(self, completed: bool) -> None:
        if self.dist is None or not completed:  # after an error, the process exits anyway
            return
        # Let gloo's worker threads finish and free their last work first: a work that
        # holds a tensor needs the GIL to be freed, and tearing down the group while one is
        # pending deadlocks (the main thread joins the worker while holding the GIL).
        # A barrier is queued after every earlier work and holds no tensor.
        self.dist.barrier()
        self.net = None
        self.dist.destroy_process_group()
        self.dist = None


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


def choose_layout(layout: str, module: Any, device: Any, dtype: Any) -> str:
    """The memory layout to train ``module`` in: ``layout``, or for "auto" the measured rule.

    channels_last on the CPU for float32 nets with a ``Conv2d`` (oneDNN's NHWC direct
    convolutions: 0.74-0.82x the NCHW train step in CPU time, docs/performance.md, issue 25);
    NCHW for float64 (the parity option keeps the kernels the NumPy engine is checked
    against), CUDA, and nets without 2-D convolutions.

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> conv = torch.nn.Conv2d(1, 2, 3)
        >>> choose_layout("auto", conv, torch.device("cpu"), np.float32)
        'channels_last'
        >>> choose_layout("auto", conv, torch.device("cpu"), np.float64)
        'nchw'
    """
    if layout != "auto":
        return layout
    torch = import_torch()
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in module.modules())
    is_float32 = np.dtype(dtype) == np.float32
    return "channels_last" if device.type == "cpu" and is_float32 and has_conv else "nchw"


def to_torch_on(model: Any, device: Any) -> Any:
    """``to_torch(model)`` moved to ``device``."""
    return to_torch(model).to(device)


def freeze_like(model: Any, module: Any) -> list[Any]:
    """Freeze in ``module`` (``to_torch(model)``) the layers frozen in ``model``; returns them.

    As the NumPy engine does (``cnnlab.layers.freeze``): their parameters get no gradient
    (``requires_grad=False``: autograd then skips the backward of a frozen prefix) and no
    update (``torch_optimizer`` leaves them out), and they stay in eval mode
    (``begin_epoch`` sets it again after ``train()``). Both models name their layers alike
    (the state_dict keys match), so a frozen layer is found under its own dotted path. A
    frozen layer with sub-layers (``all-but-head`` freezes the whole model, then unfreezes
    its head) freezes only what it holds itself; each sub-layer is frozen, or not, on its own.

    Raises:
        CnnlabError: a frozen layer has no module under its name (a conversion that renamed it).
    """
    frozen: list[Any] = []
    for prefix, layer in model.named_layers():
        if not layer.frozen:
            continue
        path = prefix.rstrip(".")
        try:
            sub = module.get_submodule(path)
        except AttributeError:
            raise CnnlabError(
                f"--backend torch: cannot freeze {type(layer).__name__} at {path!r}: "
                "its PyTorch copy has no module of that name"
            ) from None
        leaf = not layer.children()  # its PyTorch copy may still be several modules
        for p in sub.parameters(recurse=leaf):
            p.requires_grad_(False)
        frozen += list(sub.modules()) if leaf else [sub]
    for sub in frozen:
        sub.training = False  # one module at a time: eval() would reach unfrozen sub-layers
    return frozen


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

    params = [p for p in module.parameters() if p.requires_grad]  # not a frozen layer's (freeze_like)
    lr = float(optimizer.lr)
    if isinstance(optimizer, Adam):  # AdamW too (a subclass)
        cls = torch.optim.AdamW if isinstance(optimizer, AdamW) else torch.optim.Adam
        # fused: one kernel for all parameters (the default loops over them: 2.0 -> 0.5 ms
        # per step on the fashion recipe's vgg, 1 thread; issue 25)
        torch_opt = cls(
            params,
            lr=lr,
            betas=optimizer.betas,
            eps=optimizer.eps,
            weight_decay=optimizer.weight_decay,
            fused=True,
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
            if not p.requires_grad:
                continue  # frozen: no state
            saved = optimizer.state.get(name, {})
            # empty_like: the buffer in the parameter's layout (channels_last weights too)
            state: dict[str, Any] = {
                k: torch.empty_like(p).copy_(torch.from_numpy(saved[k].copy()))
                for k in optimizer.buffer_names()
                if k in saved
            }
            if isinstance(optimizer, Adam):
                state["step"] = torch.tensor(float(optimizer.t), dtype=torch.float32)  # fused's type
            torch_opt.state[p] = state
    return torch_opt


def copy_back(module: Any, model: Any, torch_opt: Any, optimizer: Any, steps: int) -> None:
    """Copy the module's weights and the torch optimizer's state into the cnnlab objects."""
    # .contiguous(): channels_last weights come back in cnnlab's NCHW memory order
    model.load_state_dict({k: v.detach().cpu().contiguous().numpy() for k, v in module.state_dict().items()})
    optimizer.t += steps
    for name, p in module.named_parameters():  # the same dotted names as cnnlab's Param.path
        state = torch_opt.state.get(p, {})
        for key in optimizer.buffer_names():
            if state.get(key) is not None:
                optimizer.state[name][key] = state[key].detach().cpu().contiguous().numpy().copy()


def label_smoothing_of(loss: Any) -> float:
    """The one loss the torch backend runs: SoftmaxCrossEntropy (as ``F.cross_entropy``)."""
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
