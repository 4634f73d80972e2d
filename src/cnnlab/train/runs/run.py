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

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import write_text_atomic
from cnnlab.data import load_dataset
from cnnlab.data.datasets import DATASETS
from cnnlab.data.loader import Normalizer
from cnnlab.data.transforms import parse_augment
from cnnlab.errors import CnnlabError
from cnnlab.io import save
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models import build_model, model_from_file
from cnnlab.optim import make_optimizer
from cnnlab.train.evaluation.evaluate import evaluate_arrays
from cnnlab.train.loop.callbacks import CSVLogger, EarlyStopping
from cnnlab.train.loop.checkpoint import (
    CheckpointWriter,
    TrainingInterrupted,
    TrainState,
    load_checkpoint,
    remove_stale_temp_files,
)
from cnnlab.train.loop.distributed import is_main_process
from cnnlab.train.loop.engines.torch_engine import resolve_device
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import restore_csv
from cnnlab.train.loop.tensorboard import TensorBoard, import_tensorboard
from cnnlab.train.runs.config import SCHEDULES, TrainConfig, describe_model, is_model_file
from cnnlab.train.runs.disk import check_disk_space
from cnnlab.train.runs.files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    TENSORBOARD_DIR,
)
from cnnlab.train.runs.finetune import (
    Pretrained,
    check_input_shape,
    is_pretrained,
    load_pretrained,
    start_model,
)
from cnnlab.train.runs.memory import check_fits
from cnnlab.train.runs.runfolder import claim_run_folder, preflight


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


def check_outputs(
    model: Any, input_shape: tuple[int, int, int], classes: Sequence[str], config: TrainConfig
) -> None:
    """Refuse a model whose outputs per image are not one score per class of the data.

    Checked from the layers' output shapes before anything is written (issue 23 item 4: a
    ``Dense(216, 3)`` head on 10-class data failed mid-run, leaving an untrained model.npz).

    Raises:
        CnnlabError: the output shape is not ``(N, K)`` with K the dataset's class count.
    """
    out = tuple(model.output_shape((1, *input_shape)))  # (1, K) for a classifier
    outputs = out[1] if len(out) == 2 else None
    if outputs == len(classes):
        return
    what = (
        config.model if is_model_file(config.model) or is_pretrained(config.model) else describe_model(config)
    )
    has = f"{outputs} outputs per image" if outputs is not None else f"output shape {out[1:]} per image"
    raise CnnlabError(
        f"train: the model {what} has {has}, but the dataset {config.data} has "
        f"{len(classes)} classes: its last layer must give one score per class (e.g. Dense(..., "
        f"{len(classes)}), or out_features: num_classes in an architecture file). Nothing was written"
    )


@dataclass
class RunData:
    """A run's data as ``train_run`` uses it: normalized with the training split's statistics.

    Attributes:
        splits: the dataset as loaded (``cnnlab.data.Splits``: raw arrays and class names).
        normalizer: the per-channel ``Normalizer`` fitted on the training split.
        x_train, y_train: normalized training images (N, C, H, W) float32 and labels (N,).
        x_test, y_test: the same for the test split (M, C, H, W) and (M,).
    """

    splits: Any
    normalizer: Any
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        _, channels, height, width = self.x_train.shape  # (N, C, H, W)
        return channels, height, width


def is_folder_path(data: str) -> bool:
    """Whether ``data`` names an image folder rather than a dataset of ``DATASETS``."""
    return data.lower() not in DATASETS and bool(data.strip()) and (Path(data).is_dir() or os.sep in data)


def with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with a folder dataset and ``data_dir`` as absolute paths (issue 23 item 5).

    A run trained on ``--data clothes`` from folder W is then evaluated, resumed and re-run
    from anywhere: config.json and model.npz name ``W/clothes``.
    """
    changes: dict[str, Any] = {}
    if config.data.lower() not in DATASETS and config.data.strip() and Path(config.data).is_dir():
        changes["data"] = str(Path(config.data).resolve())
    if config.data_dir is not None:
        changes["data_dir"] = str(Path(config.data_dir).resolve())
    if is_pretrained(config.model) and Path(config.model).exists():  # the model fine-tuned from
        changes["model"] = str(Path(config.model).resolve())
    return dataclasses.replace(config, **changes) if changes else config


def load_run_data(
    config: TrainConfig,
    download: bool = True,
    run_dir: Path | None = None,
    pretrained: Pretrained | None = None,
) -> RunData:
    """Load ``config.data`` and normalize both splits with the training split's mean and std.

    Args:
        run_dir: the run being resumed, named when its dataset folder no longer exists.
        pretrained: the model a fine-tuning run starts from (``train.runs.finetune``): an
            image folder is read at its input size and channels, and its normalization is
            used where it has one.

    Raises:
        FileNotFoundError: the dataset files are missing (and not downloaded, or not allowed
            to be: ``download=False``); the message lists every folder looked in. A dataset
            folder that no longer exists is named, and the run trained on it.
    """
    if is_folder_path(config.data) and not Path(config.data).is_dir():
        trained = f"{run_dir} was trained on it" if run_dir is not None else "the config names it"
        raise FileNotFoundError(
            f"train: the dataset folder {config.data} does not exist ({trained}; was it moved or "
            "deleted?). Put the images back there, or train a new run with --data PATH"
        )
    shape = pretrained.input_shape if pretrained is not None else None
    splits = load_dataset(
        config.data,
        root=config.data_dir,
        download=download,
        channels=shape[0] if shape else None,  # folders only: read to fit the model
        size=(shape[1], shape[2]) if shape else None,
    )
    if pretrained is not None and pretrained.normalization:
        normalizer = Normalizer.from_state(pretrained.normalization)  # as the features were trained
    else:
        normalizer = Normalizer().fit(splits.train.x)
    return RunData(
        splits,
        normalizer,
        normalizer(splits.train.x),  # (N, C, H, W)
        splits.train.y,
        normalizer(splits.test.x),  # (M, C, H, W)
        splits.test.y,
    )


@dataclass
class RunParts:
    """What ``fit`` trains with: the model, its loss, optimizer, schedule and augmentation."""

    model: Any
    loss: Any
    optimizer: Any
    schedule: Any  # None for schedule "none"
    transform: Any  # ``transform(xb, rng) -> xb``, or None for augment "none"


def build_run_parts(config: TrainConfig, data: RunData, pretrained: Pretrained | None = None) -> RunParts:
    """Build ``config``'s model (seeded), loss, optimizer, schedule and augmentation for ``data``.

    The model is first built dry to check that it fits in memory (``train.runs.memory.check_fits``).
    Called again with the same config, it returns the same initial weights. With
    ``pretrained`` (fine-tuning) the model is a copy of it, with ``config.new_head`` and
    ``config.freeze`` applied (``train.runs.finetune.start_model``); the optimizer gets the
    parameters that are not frozen.
    """
    channels, height, width = data.image_shape
    num_classes = len(data.splits.classes)
    if pretrained is not None:
        check_input_shape(pretrained, (channels, height, width), config.data)
    notes: list[str] = []

    def build(rng: np.random.Generator) -> Any:
        if pretrained is not None:
            model, notes[:] = start_model(pretrained, num_classes, config.new_head, config.freeze, rng)
            return model
        if is_model_file(config.model):
            return model_from_file(config.model, channels, (height, width), num_classes, rng=rng)
        return build_model(
            config.model,
            in_channels=channels,
            input_size=(height, width),
            num_classes=num_classes,
            rng=rng,
            **config.model_args,
        )

    check_fits(
        lambda: build(np.random.default_rng(config.seed)),
        (channels, height, width),
        config.batch_size,
        describe_model(config),
        compare_memory=config.device != "cuda",  # GPU memory is not what the estimate is about
    )
    model = build(np.random.default_rng(config.seed))
    for note in notes:  # what fine-tuning changed (new head, frozen layers)
        print(f"cnnlab train: {note}", file=sys.stderr)
    check_outputs(model, (channels, height, width), data.splits.classes, config)
    loss, optimizer, schedule = loss_optimizer_schedule(config, model)
    # Augmentation runs on the normalized training batches only (never validation or test).
    # Pixels that shifts, crops and rotations uncover get the normalized value of black (the
    # background of the raw images), not 0, which after normalization is the mean gray.
    black = data.normalizer(np.zeros((1, channels, 1, 1), np.float32)).ravel()  # (C,)
    transform = parse_augment(config.augment, (channels, height, width), fill=tuple(map(float, black)))
    return RunParts(model, loss, optimizer, schedule, transform)


def loss_optimizer_schedule(config: TrainConfig, model: Any) -> tuple[SoftmaxCrossEntropy, Any, Any]:
    """The loss, the optimizer of ``model``'s parameters and the schedule (None for "none")
    that ``config`` names: the same for image and text runs."""
    loss = SoftmaxCrossEntropy(label_smoothing=config.label_smoothing)
    optimizer = make_optimizer(
        config.optimizer,
        model.parameters(),
        lr=config.lr,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
    )
    schedule = SCHEDULES[config.schedule](optimizer, config.epochs)
    return loss, optimizer, schedule


def train_run(
    config: TrainConfig,
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    overwrite: bool = False,
    hold: contextlib.ExitStack[Any] | None = None,
    default_dir: Path | None = None,
) -> RunResult:
    """Train, evaluate and write the run folder for ``config``.

    Without ``config.out`` the run gets ``default_dir`` (a fresh ``runs/<timestamp>`` when
    None), or ``NAME-2``, ``NAME-3``, ... when that folder is taken by the time it is claimed.

    ``callbacks`` are added to the run's own (history logger, early stopping), e.g. the
    hyperparameter search's pruning reporter. With ``resume`` the run continues from
    ``config.out``/checkpoint.npz (from epoch 1 when there is none yet), bit for bit.

    Nothing is written before every option, the data and the model are checked (the model
    built, after an estimate of its memory): a failed start leaves no folder and changes no
    file. Then the folder is claimed (``cnnlab.train.runs.runfolder``): locked against other
    runs, and refused if it already holds a run, unless ``resume`` or ``overwrite`` (which
    deletes the old run's files first). The lock is held until the function returns, or,
    with ``hold`` (an ExitStack of the caller's), until the caller closes it.
    """
    if hold is None:
        with contextlib.ExitStack() as stack:
            return _train_run(config, verbose, callbacks, resume, overwrite, stack, default_dir)
    return _train_run(config, verbose, callbacks, resume, overwrite, hold, default_dir)


def _train_run(
    config: TrainConfig,
    verbose: bool,
    callbacks: Sequence[Any],
    resume: bool,
    overwrite: bool,
    hold: contextlib.ExitStack[Any],
    default_dir: Path | None,
) -> RunResult:
    config.validate()
    config = with_absolute_paths(config)  # config.json and model.npz work from any folder
    if config.tensorboard:  # the install hint before anything is written
        import_tensorboard()
    start = time.perf_counter()
    run_dir = Path(config.out) if config.out else (default_dir or default_run_dir())
    # Under torchrun only rank 0 writes the run folder (cnnlab.train.loop.distributed).
    is_main = is_main_process(config.backend)
    if is_main and config.out:  # (a default folder gets a new name if taken)
        preflight(run_dir, resume, overwrite)  # fail fast; checked again under the lock

    # 1. Data: per-channel normalization from the training split only (fine-tuning: the
    # trained model's input size, channels and normalization; train.runs.finetune).
    pretrained = load_pretrained(config.model) if is_pretrained(config.model) else None
    data = load_run_data(config, run_dir=run_dir if resume else None, pretrained=pretrained)

    # 2. Model (checked to fit in memory first), loss, optimizer, schedule, augmentation.
    parts = build_run_parts(config, data, pretrained)
    if config.backend == "torch":
        resolve_device(config.device)  # torch missing, or --device cuda without a GPU: say so now
    if is_main:
        check_disk_space(run_dir, parts.model, parts.optimizer)  # room for model, checkpoints and plots

    # 3. Everything is checked: claim the run folder (locked until the run is done) and write
    # the config before training, so a crashed run still says what it was; then train.
    run_dir = claim_and_write_config(config, run_dir, is_main, resume, overwrite, hold)
    initial_state = _resume_state(config, run_dir, parts, is_main) if resume else None
    seconds_before = earlier_seconds(initial_state)
    history = _fit_run(config, data, parts, run_dir, is_main, callbacks, verbose, initial_state)
    if not is_main:
        return RunResult(run_dir, math.nan, math.nan, time.perf_counter() - start, history)

    # 4. Test: the test split is used once, here, never for model selection.
    metrics = evaluate_arrays(parts.model, data.x_test, data.y_test, data.splits.classes, tta=config.tta)
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds + seconds_before, 2)
    write_text_atomic(run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return RunResult(run_dir, metrics["test_accuracy"], metrics["test_loss"], seconds, history, metrics)


def claim_and_write_config(
    config: TrainConfig,
    run_dir: Path,
    is_main: bool,
    resume: bool,
    overwrite: bool,
    hold: contextlib.ExitStack[Any],
) -> Path:
    """Claim ``run_dir`` (locked until ``hold`` closes; a default name may become NAME-2) and
    write ``config.json`` into it. Returns the folder claimed."""
    if is_main:
        run_dir = hold.enter_context(claim_run_folder(run_dir, resume, overwrite, unique=not config.out))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    config_dict = dataclasses.asdict(config) | {"out": str(run_dir)}
    config_text = json.dumps(config_dict, indent=2) + "\n"
    if is_main:
        write_text_atomic(run_dir / CONFIG_FILE, config_text)
    return run_dir


def _resume_state(config: TrainConfig, run_dir: Path, parts: RunParts, is_main: bool) -> TrainState | None:
    """The checkpoint of a resumed run (None when it has none yet), after clearing what a killed
    write left; history.csv rebuilt when it does not match; a finished run is said so."""
    initial_state = load_resume_checkpoint(run_dir, parts.model, parts.optimizer)
    if initial_state is not None and is_main and restore_csv(run_dir / HISTORY_FILE, initial_state.history):
        print(
            f"cnnlab train: {run_dir / HISTORY_FILE} did not match {CHECKPOINT_FILE}: rebuilt from its "
            f"{initial_state.epoch} epoch(s)",
            file=sys.stderr,
        )
    if (
        initial_state is not None
        and is_main
        and (initial_state.epoch >= config.epochs or initial_state.stopped)
    ):
        why = (
            "early stopping had ended it" if initial_state.stopped else f"all {config.epochs} epochs are done"
        )
        print(
            f"cnnlab train: {run_dir} had finished ({why}): nothing left to train; its model is tested again",
            file=sys.stderr,
        )
    return initial_state


def load_resume_checkpoint(run_dir: Path, model: Any, optimizer: Any) -> TrainState | None:
    """Clear what a killed write left in ``run_dir``, then load its checkpoint into ``model``
    and ``optimizer`` (None when the run has none yet)."""
    remove_stale_temp_files(run_dir)  # from a write that was killed
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if not checkpoint_path.exists():
        return None
    return load_checkpoint(checkpoint_path, model, optimizer)


def earlier_seconds(initial_state: TrainState | None) -> float:
    """Epoch times of earlier commands of a resumed run: metrics.json's "seconds" is the whole run's."""
    earlier = [float(row.get("seconds", 0.0)) for row in (initial_state.history if initial_state else [])]
    return math.fsum(t for t in earlier if math.isfinite(t))


def run_callbacks(
    config: TrainConfig,
    run_dir: Path,
    callbacks: Sequence[Any],
    sample: np.ndarray | None,
    is_main: bool = True,
) -> list[Any]:
    """The run's callbacks, in this order: the history.csv logger, the caller's ``callbacks``,
    early stopping and TensorBoard when the config asks (TensorBoard on rank 0 only;
    ``sample`` is the input its images show, None for scalars and histograms only)."""
    all_callbacks: list[Any] = [CSVLogger(run_dir / HISTORY_FILE), *callbacks]
    if config.early_stopping > 0:
        all_callbacks.append(EarlyStopping(monitor="val_loss", patience=config.early_stopping))
    if config.tensorboard and is_main:
        all_callbacks.append(TensorBoard(run_dir / TENSORBOARD_DIR, sample=sample))
    return all_callbacks


def _fit_run(
    config: TrainConfig,
    data: RunData,
    parts: RunParts,
    run_dir: Path,
    is_main: bool,
    callbacks: Sequence[Any],
    verbose: bool,
    initial_state: TrainState | None,
) -> Any:
    """``fit`` with the run's callbacks and checkpoints; the weights are saved whatever happens.

    Raises:
        TrainingInterrupted: Ctrl-C; the message says how many epochs are saved and how to resume.
    """
    write_checkpoint = CheckpointWriter(
        run_dir / CHECKPOINT_FILE, is_main, initial_state.epoch if initial_state else 0
    )
    sample = data.x_test[:1]  # TensorBoard's images show test image 0
    all_callbacks = run_callbacks(config, run_dir, callbacks, sample, is_main)

    channels, height, width = data.image_shape
    extra = {
        "classes": list(data.splits.classes),
        "input_shape": [channels, height, width],
        "normalization": data.normalizer.state(),
        "dataset": config.data,
    }
    save_model = True
    try:
        return fit(
            parts.model,
            parts.loss,
            parts.optimizer,
            (data.x_train, data.y_train),
            val_split=config.val_split,
            epochs=config.epochs,
            batch_size=config.batch_size,
            callbacks=all_callbacks,
            seed=config.seed,
            schedule=parts.schedule,
            transform=parts.transform,
            verbose=verbose,
            initial_state=initial_state,
            checkpoint_fn=write_checkpoint,
            backend=config.backend,
            device=config.device,
            compile_model=config.compile,
        )
    except KeyboardInterrupt:
        done = write_checkpoint.saved_epoch
        if done == 0:  # no epoch saved: there is no checkpoint, and no model.npz worth writing
            save_model = False
            raise TrainingInterrupted(
                f"cnnlab train: interrupted before the first epoch was saved: no model and no "
                f"checkpoint were written (the config is in {run_dir}). Start again with: "
                f"cnnlab train --resume {run_dir}",
                run_dir,
                0,
            ) from None
        raise TrainingInterrupted(
            f"cnnlab train: interrupted; {done} of {config.epochs} epochs are saved in {run_dir} "
            f"({MODEL_FILE}, {CHECKPOINT_FILE}). Resume with: cnnlab train --resume {run_dir}",
            run_dir,
            done,
        ) from None
    finally:
        # Whatever happened (including a NaN stop, which restores the last good weights),
        # the weights we have are saved: nothing trained is lost.
        if is_main and save_model:
            save(parts.model, run_dir / MODEL_FILE, extra=extra)
