"""``cnnlab bench --recipe NAME``: real training steps of a recipe, per engine, in one process.

A step as ``cnnlab train --recipe NAME`` runs it, timed. Everything comes from the trainer's
own code: the recipe's data, normalized as the trainer does (``train.run.load_run_data``);
its model, loss, optimizer and augmentation (``train.run.build_run_parts``); the seeded
validation split and shuffled loader (``train.fit.TrainBatches``, ``augmented``); and the
engine's ``train_step`` (``train.engines.make_engine``, with ``begin`` and ``begin_epoch``
called as ``fit`` calls them). One timed step is: the next batch from the loader, its
augmentation, forward, loss, backward and the optimizer update.

Engines: the NumPy engine and the torch engine (``cnnlab train --backend torch``, on
the CPU), each with its own model, optimizer and loader built from the recipe's seed. They
are timed in interleaved rounds (``benchmark.time_interleaved``: warm-up steps first, a short
pause between engines), and each one's median step projects its epoch: steps per epoch
(training part after the validation split / batch size, rounded up) x median step. The
validation pass at the end of an epoch is not included.

The data is never downloaded here (a benchmark times; it does not fetch tens of megabytes
first): missing files are one error line that says how to get them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab.cli import benchmark
from cnnlab.data.locate import SYSTEM_DIRS, cache_dir, search_dirs
from cnnlab.train.loop.engines import make_engine
from cnnlab.train.loop.fit import TrainBatches, augmented
from cnnlab.train.runs.config import TrainConfig, describe_model
from cnnlab.train.runs.recipes import recipe
from cnnlab.train.runs.run import RunData, build_run_parts, load_run_data

#: Untimed steps per engine before the rounds.
WARMUP = 3


def recipe_config(name: str, data_dir: str | None = None) -> TrainConfig:
    """The validated config of ``cnnlab train --recipe NAME [--data-dir DATA_DIR]``.

    Raises:
        ValueError: an unknown recipe (the message lists the valid names), or a ``data_dir``
            that is not an existing folder.
    """
    values = recipe(name)
    if data_dir is not None:
        values["data_dir"] = data_dir
    config = TrainConfig.from_dict(values)
    config.validate()
    return config


def load_recipe_data(name: str, config: TrainConfig) -> RunData:
    """``config``'s data as the trainer loads it, without downloading; one-line error if missing."""
    try:
        return load_run_data(config, download=False)
    except FileNotFoundError:
        raise FileNotFoundError(missing_data_message(name, config)) from None


def missing_data_message(name: str, config: TrainConfig) -> str:
    """One line: which folders were searched for ``config.data``, and how to get the files."""
    dataset = config.data.lower()
    places = ", ".join(str(folder) for folder, _ in search_dirs(dataset, config.data_dir))
    ways = [f"`{command}`" for _, command in SYSTEM_DIRS.get(dataset, [])]
    ways.append(
        f"`python -c \"from cnnlab.data import load_dataset; load_dataset('{dataset}')\"` "
        f"(downloads them to {cache_dir(dataset)})"
    )
    return (
        f"--recipe {name}: the {dataset} files are not in {places} (cnnlab bench does not "
        f"download). Get them with {' or '.join(ways)}, or pass --data-dir FOLDER"
    )


class RecipeStep:
    """One engine training on a recipe's data; each call is one real training step.

    Args:
        config: the recipe's config (model, batch size, optimizer, augmentation, seed).
        data: its data, loaded once for every engine (``load_recipe_data``).
        backend: "numpy" or "torch" (``cnnlab train --backend``), on the CPU.

    Attributes:
        label: "numpy" or "torch", the engine's name in the table.
        train_size: images in the recipe's training part (after the validation split).
        steps_per_epoch: batches in one epoch of it.
    """

    def __init__(self, config: TrainConfig, data: RunData, backend: str) -> None:
        parts = build_run_parts(config, data)  # a fresh model with the recipe's seeded weights
        batches = TrainBatches(
            data.x_train, data.y_train, config.batch_size, seed=config.seed, val_split=config.val_split
        )
        self.engine = make_engine(
            backend,
            parts.model,
            parts.loss,
            parts.optimizer,
            seed=config.seed,
            device="cpu",
            batch_size=config.batch_size,
        )
        self.backend = self.label = backend
        self.train_size = len(batches.loader.x)
        self.steps_per_epoch = len(batches.loader)
        self.engine.begin()
        self._batches = self._epochs(batches, parts.transform, float(parts.optimizer.lr))

    def _epochs(self, batches: Any, transform: Any, lr: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The augmented batches of epoch after epoch, each epoch begun as ``fit`` begins it."""
        epoch = 0
        while True:
            epoch += 1
            self.engine.begin_epoch(epoch, lr)
            yield from augmented(batches.loader, transform, batches.rngs["augment"])

    def __call__(self) -> None:
        xb, yb = next(self._batches)  # (B, C, H, W) augmented, (B,)
        self.engine.train_step(xb, yb)

    def close(self) -> None:
        """End training as ``fit`` does (the NumPy engine restores the first layer's flag)."""
        self.engine.end(True)


def engines(print_fn: Callable[[str], None]) -> list[str]:
    """The backends to time: the NumPy engine, then torch if installed."""
    found = ["numpy"]
    try:
        import torch  # noqa: F401
    except ImportError:
        print_fn("torch not installed: no torch engine, no ratios (pip install 'cnnlab[torch]')")
    else:
        found.append("torch")
    return found


def run_recipe(
    name: str,
    steps: int = 10,
    rounds: int = 5,
    data_dir: str | None = None,
    cpu_clock: bool = False,
    print_fn: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Time ``steps`` x ``rounds`` real training steps of recipe ``name`` per engine; print the table.

    ``cpu_clock``: every engine on ONE thread (BLAS, torch), timed by the CPU time of
    the process (as ``cnnlab bench --cpu-clock``). Returns one row per engine (see ``format_rows``).
    """
    config = recipe_config(name, data_dir)
    data = load_recipe_data(name, config)
    chosen = engines(print_fn)
    with contextlib.ExitStack() as stack:
        clock: Callable[[], float] = time.perf_counter
        if cpu_clock:
            stack.enter_context(benchmark.one_thread())
            stack.enter_context(_torch_threads(1))
            clock = time.process_time
        steppers = [RecipeStep(config, data, backend) for backend in chosen]
        try:
            _print_header(name, config, data, steppers, rounds, steps, cpu_clock, print_fn)
            times = benchmark.time_interleaved(
                {s.label: s for s in steppers}, rounds, steps, warmup=WARMUP, clock=clock
            )
        finally:
            for stepper in steppers:
                stepper.close()
    torch_s = times.get("torch")
    rows = []
    for stepper in steppers:
        sec = times[stepper.label]
        rows.append(
            {
                "recipe": name,
                "engine": stepper.backend,
                "batch_size": config.batch_size,
                "ms": sec * 1e3,
                "steps_per_s": 1 / sec,
                "steps_per_epoch": stepper.steps_per_epoch,
                "epoch_s": stepper.steps_per_epoch * sec,
                "ratio_vs_torch": sec / torch_s if torch_s else float("nan"),
            }
        )
    print_fn(format_rows(rows))
    return rows


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch on ``threads`` threads inside (when installed), its earlier count after."""
    try:
        import torch
    except ImportError:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _print_header(
    name: str,
    config: TrainConfig,
    data: RunData,
    steppers: list[RecipeStep],
    rounds: int,
    steps: int,
    cpu_clock: bool,
    print_fn: Callable[[str], None],
) -> None:
    c, h, w = data.image_shape
    first = steppers[0]  # every engine trains on the same split
    print_fn(
        f"recipe {name}: {describe_model(config)} on {config.data} {c}x{h}x{w}, batch {config.batch_size}, "
        f"{config.optimizer} lr {config.lr:g}, augment {config.augment}"
    )
    print_fn(
        f"training part: {first.train_size:,} images (val_split {config.val_split:g}): "
        f"{first.steps_per_epoch} steps per epoch"
    )
    try:
        import torch

        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_version = "not installed"
    print_fn(f"machine: {benchmark.cores()} cores; BLAS: {benchmark.blas_info()}")
    print_fn(f"numpy {np.__version__}, torch {torch_version}")
    print_fn(benchmark.env_line())
    clock = "CPU time of the process, every engine on 1 thread (--cpu-clock)" if cpu_clock else "wall clock"
    print_fn(
        f"timed: {rounds} interleaved rounds x {steps} steps per engine after {WARMUP} warm-up steps; "
        f"median step, {clock}; epoch s = steps per epoch x ms/step (no validation pass)"
    )


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The table of ``run_recipe``'s rows: engine, ms/step, steps/s, epoch s, x torch.

    Example:
        >>> row = {"engine": "torch", "ms": 40.0, "steps_per_s": 25.0, "epoch_s": 16.88,
        ...        "ratio_vs_torch": 1.0}
        >>> print(format_rows([row]).splitlines()[-1])
        torch         40.0    25.00     16.9     1.00
    """
    head = f"{'engine':<8}{'ms/step':>10}{'steps/s':>9}{'epoch s':>9}{'x torch':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['engine']:<8}{r['ms']:>10.1f}{r['steps_per_s']:>9.2f}"
            f"{r['epoch_s']:>9.1f}{r['ratio_vs_torch']:>9.2f}"
        )
    return "\n".join(lines)
