"""One training run, start to finish: the job behind ``cnnlab train``.

Reads top to bottom: resolve the config, load the data, build the model, fit, evaluate
on the test split, and write the run folder::

    RUN_DIR/
      config.json    the resolved config (re-run it with `cnnlab train --config`)
      model.npz      architecture + weights + class names + normalization (no pickle)
      history.csv    one row per epoch
      metrics.json   test_accuracy, test_loss, per-class metrics, confusion matrix
                     (with --tta flip: of the averaged predictions, and accuracy_without_tta)
      checkpoint.npz everything needed to resume (`cnnlab train --resume RUN_DIR`)
      tensorboard/   with --tensorboard: event files (`tensorboard --logdir RUN_DIR/tensorboard`)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import arg_error
from cnnlab.train.evaluate import TTA_MODES


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder."""

    data: str = "digits"
    data_dir: str | None = None
    model: str = "small_bn"
    model_args: dict[str, Any] = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    label_smoothing: float = 0.0  # the training loss's target: (1 - eps) y + eps / K
    schedule: str = "cosine"
    val_split: float = 0.1
    early_stopping: int = 0
    augment: str = "none"
    tta: str = "none"  # test-time augmentation of the final evaluation: none or flip
    seed: int = 0
    out: str | None = None
    backend: str = "numpy"  # "torch": cnnlab.train.torch_backend (also under torchrun)
    device: str = "cpu"  # "cuda" needs backend "torch"
    tensorboard: bool = False  # event files in RUN/tensorboard (cnnlab.train.tensorboard)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown}. Valid keys: {', '.join(sorted(names))}")
        return cls(**values)

    def validate(self) -> None:
        if self.epochs < 1:
            raise arg_error("train", "epochs", "a positive int", self.epochs)
        if self.batch_size < 1:
            raise arg_error("train", "batch_size", "a positive int", self.batch_size)
        if not self.lr > 0 or not np.isfinite(self.lr):
            raise arg_error("train", "lr", "a positive finite float", self.lr)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise arg_error("train", "label_smoothing", "in [0, 1)", self.label_smoothing)
        if not 0.0 <= self.val_split < 1.0:
            raise arg_error("train", "val_split", "in [0, 1)", self.val_split)
        if self.schedule not in SCHEDULES:
            raise arg_error("train", "schedule", f"one of {', '.join(SCHEDULES)}", self.schedule)
        if self.tta not in TTA_MODES:
            raise arg_error("train", "tta", f"one of {', '.join(TTA_MODES)}", self.tta)
        if self.backend not in ("numpy", "torch"):
            raise arg_error("train", "backend", "numpy or torch", self.backend)
        if self.device not in ("cpu", "cuda") or (self.device == "cuda" and self.backend != "torch"):
            raise arg_error("train", "device", "cpu, or cuda with --backend torch", self.device)


SCHEDULES = ("none", "cosine", "step", "plateau")


@dataclass
class RunResult:
    run_dir: Path
    test_accuracy: float
    test_loss: float
    seconds: float
    history: Any
    metrics: dict[str, Any] = field(default_factory=dict)


def default_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def train_run(
    config: TrainConfig, verbose: bool = True, callbacks: Sequence[Any] = (), resume: bool = False
) -> RunResult:
    """Train, evaluate and write the run folder for ``config``.

    ``callbacks`` are added to the run's own (history logger, early stopping), e.g. the
    hyperparameter search's pruning reporter. With ``resume`` the run continues from
    ``config.out``/checkpoint.npz (from epoch 1 when there is none yet), bit for bit.
    """
    from cnnlab.atomic import write_text_atomic
    from cnnlab.data import load_dataset
    from cnnlab.data.loader import Normalizer
    from cnnlab.data.transforms import parse_augment
    from cnnlab.io import save
    from cnnlab.losses import SoftmaxCrossEntropy
    from cnnlab.models import build_model, model_from_file
    from cnnlab.optim import make_optimizer
    from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau, StepLR
    from cnnlab.train.callbacks import CSVLogger, EarlyStopping
    from cnnlab.train.checkpoint import (
        CHECKPOINT_NAME,
        TrainingInterrupted,
        load_checkpoint,
        remove_stale_temp_files,
        save_checkpoint,
    )
    from cnnlab.train.distributed import is_main_process
    from cnnlab.train.evaluate import evaluate_arrays
    from cnnlab.train.fit import fit

    config.validate()
    if config.tensorboard:  # the install hint before anything is written
        from cnnlab.train.tensorboard import import_tensorboard

        import_tensorboard()
    start = time.perf_counter()
    run_dir = Path(config.out) if config.out else default_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. Data: per-channel normalization from the training split only.
    splits = load_dataset(config.data, root=config.data_dir)
    normalizer = Normalizer().fit(splits.train.x)
    x_train, y_train = normalizer(splits.train.x), splits.train.y
    x_test, y_test = normalizer(splits.test.x), splits.test.y
    _, channels, height, width = x_train.shape  # (N, C, H, W)
    num_classes = len(splits.classes)

    # 2. Model: a zoo name or an architecture file.
    rng = np.random.default_rng(config.seed)
    if os.path.splitext(config.model)[1].lower() in (".yaml", ".yml", ".json"):
        model = model_from_file(config.model, channels, (height, width), num_classes, rng=rng)
    else:
        model = build_model(
            config.model,
            in_channels=channels,
            input_size=(height, width),
            num_classes=num_classes,
            rng=rng,
            **config.model_args,
        )
    loss = SoftmaxCrossEntropy(label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters(),
        lr=config.lr,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
    )
    schedule: Any = {
        "none": lambda: None,
        "cosine": lambda: CosineWarmup(
            optimizer, total_epochs=config.epochs, warmup_epochs=min(1, config.epochs - 1)
        ),
        "step": lambda: StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1),
        "plateau": lambda: ReduceLROnPlateau(optimizer, factor=0.5, patience=2),
    }[config.schedule]()

    # 3. The config is written before training, so a crashed run still says what it was.
    config_dict = dataclasses.asdict(config) | {"out": str(run_dir)}
    config_text = json.dumps(config_dict, indent=2) + "\n"
    # Under torchrun only rank 0 writes the run folder (cnnlab.train.distributed).
    is_main = config.backend != "torch" or is_main_process()
    if is_main:
        write_text_atomic(run_dir / "config.json", config_text)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    initial_state = None
    if resume:
        remove_stale_temp_files(run_dir)  # from a write that was killed
        if checkpoint_path.exists():
            initial_state = load_checkpoint(checkpoint_path, model, optimizer)
    saved_epochs = [initial_state.epoch if initial_state else 0]  # the last checkpointed epoch

    def write_checkpoint(state: Any) -> None:
        if is_main:  # under torchrun, one writer
            save_checkpoint(checkpoint_path, state)
        saved_epochs[0] = state.epoch

    all_callbacks: list[Any] = [CSVLogger(run_dir / "history.csv"), *callbacks]
    if config.early_stopping > 0:
        all_callbacks.append(EarlyStopping(monitor="val_loss", patience=config.early_stopping))
    if config.tensorboard and is_main:
        from cnnlab.train.tensorboard import TensorBoard

        all_callbacks.append(TensorBoard(run_dir / "tensorboard", sample=x_test[:1]))  # test image 0
    # Augmentation runs on the normalized training batches only (never validation or test).
    # Pixels that shifts, crops and rotations uncover get the normalized value of black (the
    # background of the raw images), not 0, which after normalization is the mean gray.
    black = normalizer(np.zeros((1, channels, 1, 1), np.float32)).ravel()  # (C,)
    transform = parse_augment(config.augment, (channels, height, width), fill=tuple(map(float, black)))

    extra = {
        "classes": list(splits.classes),
        "input_shape": [channels, height, width],
        "normalization": normalizer.state(),
        "dataset": config.data,
    }
    train_fn: Any = fit
    if config.backend == "torch":
        from cnnlab.train.torch_backend import fit_torch

        train_fn = functools.partial(fit_torch, device=config.device)
    try:
        history = train_fn(
            model,
            loss,
            optimizer,
            (x_train, y_train),
            val_split=config.val_split,
            epochs=config.epochs,
            batch_size=config.batch_size,
            callbacks=all_callbacks,
            seed=config.seed,
            schedule=schedule,
            transform=transform,
            verbose=verbose,
            initial_state=initial_state,
            checkpoint_fn=write_checkpoint,
        )
    except KeyboardInterrupt:
        done = saved_epochs[0]
        raise TrainingInterrupted(
            f"cnnlab train: interrupted; {done} of {config.epochs} epochs are saved in {run_dir} "
            f"(model.npz, {CHECKPOINT_NAME}). Resume with: cnnlab train --resume {run_dir}",
            run_dir,
            done,
        ) from None
    finally:
        # Whatever happened (including a NaN stop, which restores the last good weights),
        # the weights we have are saved: nothing trained is lost.
        if is_main:
            save(model, run_dir / "model.npz", extra=extra)
    if not is_main:
        return RunResult(run_dir, math.nan, math.nan, time.perf_counter() - start, history)

    # 4. Test: the test split is used once, here, never for model selection.
    metrics = evaluate_arrays(model, x_test, y_test, splits.classes, tta=config.tta)
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds, 2)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return RunResult(run_dir, metrics["test_accuracy"], metrics["test_loss"], seconds, history, metrics)
