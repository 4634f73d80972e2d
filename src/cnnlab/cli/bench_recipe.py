"""``cnnlab bench --recipe NAME``: an epoch of real training steps per line, in one process.

A step as ``cnnlab train --recipe NAME`` runs it, timed. Everything comes from the trainer's
own code: the recipe's data, normalized as the trainer does (``train.runs.run.load_run_data``);
its model, loss, optimizer and augmentation (``train.runs.run.build_run_parts``); the seeded
validation split and shuffled loader (``train.loop.fit.TrainBatches``, ``augmented``, with
the next batch prepared in a background thread as ``fit`` does); and the engine's
``train_step`` (``train.loop.engines``, with ``begin`` and ``begin_epoch`` called as ``fit``
calls them). One timed step is: the next batch, its augmentation, forward, loss, backward
and the optimizer update.

Lines (``LINES``; issue 25): ``numpy`` (the NumPy engine), ``torch`` (``--backend torch`` as
shipped: its layout rule, overlap), ``torch-compile`` (``--compile``), ``plain`` (the plain
PyTorch script a user would write, ``cli/bench_plain_torch.py``: NCHW, eager, a Python loop)
and, to see what each choice gives, ``numpy-serial`` / ``torch-serial`` (no overlap) and
``torch-nchw``. Recipes: ``cnnlab train``'s, plus ``resnet`` (``BENCH_RECIPES``: the fashion
recipe with the zoo resnet). Each line has its own model, optimizer and loader built from
the recipe's seed; they are timed in interleaved rounds (``benchmark.time_interleaved``:
warm-up steps first, a short pause between lines). ``epoch s`` = steps per epoch (training
part after the validation split / batch size, rounded up) x the mean timed step: the time
of one epoch's steps, extrapolated when fewer steps were timed (``--steps``; ``--epoch``
times a whole epoch's worth). The validation pass is not included. Peak memory: VmHWM of a
fresh process per line that builds the line and runs a few steps (``peak_rss_mb``).

The data is never downloaded here (a benchmark times; it does not fetch tens of megabytes
first): missing files are one error line that says how to get them.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from cnnlab.cli import benchmark
from cnnlab.cli.bench_plain_torch import plain_torch_steps, shift_flip_options
from cnnlab.data.locate import SYSTEM_DIRS, cache_dir, search_dirs
from cnnlab.interop.torch import to_torch
from cnnlab.train.loop.engines import make_engine
from cnnlab.train.loop.engines.torch_engine import TorchEngine
from cnnlab.train.loop.fit import TrainBatches, augmented
from cnnlab.train.runs.config import TrainConfig, describe_model
from cnnlab.train.runs.recipes import RECIPES, recipe
from cnnlab.train.runs.run import RunData, build_run_parts, load_run_data

#: Untimed steps per line before the rounds.
WARMUP = 3
#: Bench-only recipes: the fashion recipe (data, batch, optimizer, augmentation) with another model.
BENCH_RECIPES: dict[str, dict[str, Any]] = {"resnet": {"model": "resnet", "model_args": {}}}
#: Line name -> how it trains: an engine's options, or the plain PyTorch script.
LINES: dict[str, dict[str, Any]] = {
    "numpy": {"backend": "numpy"},
    "numpy-serial": {"backend": "numpy", "overlap": False},
    "torch": {"backend": "torch"},
    "torch-nchw": {"backend": "torch", "layout": "nchw"},
    "torch-serial": {"backend": "torch", "overlap": False},
    "torch-compile": {"backend": "torch", "compile_model": True},
    "plain": {"backend": "plain"},
}
DEFAULT_LINES = ("numpy", "torch", "plain")


def recipe_config(name: str, data_dir: str | None = None) -> TrainConfig:
    """The validated config of ``cnnlab train --recipe NAME [--data-dir DATA_DIR]``.

    Raises:
        ValueError: an unknown recipe (the message lists the valid names), or a ``data_dir``
            that is not an existing folder.
    """
    if name in BENCH_RECIPES:
        values = recipe("fashion") | BENCH_RECIPES[name]
    elif name in RECIPES:
        values = recipe(name)
    else:  # the bench's own names too: `bench --recipe` accepts them
        raise ValueError(f"unknown recipe {name!r}. Valid recipes: {', '.join([*RECIPES, *BENCH_RECIPES])}")
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
    """One line training on a recipe's data; each call is one real training step.

    Args:
        config: the recipe's config (model, batch size, optimizer, augmentation, seed).
        data: its data, loaded once for every line (``load_recipe_data``).
        line: a name from ``LINES``, e.g. "numpy", "torch", "plain".

    Attributes:
        label: the line's name in the table.
        train_size: images in the recipe's training part (after the validation split).
        steps_per_epoch: batches in one epoch of it.
    """

    def __init__(self, config: TrainConfig, data: RunData, line: str) -> None:
        options = dict(LINES[line])
        backend = options.pop("backend")
        overlap = options.pop("overlap", True)
        parts = build_run_parts(config, data)  # a fresh model with the recipe's seeded weights
        batches = TrainBatches(
            data.x_train, data.y_train, config.batch_size, seed=config.seed, val_split=config.val_split
        )
        self.label = self.backend = line
        self.train_size = len(batches.loader.x)
        self.steps_per_epoch = len(batches.loader)
        self.engine: Any = None
        self._compiled = 0.0  # compile seconds of the finished epochs
        if backend == "plain":
            max_shift, fill, flip_p = shift_flip_options(parts.transform)
            self._batches: Generator[Any, None, None] = plain_torch_steps(
                to_torch(parts.model).float(),
                batches.loader.x,
                batches.loader.y,
                batch_size=config.batch_size,
                lr=config.lr,
                max_shift=max_shift,
                fill=fill,
                flip_p=flip_p,
                seed=config.seed,
            )
            return
        model, loss, optimizer, seed, batch = (
            parts.model,
            parts.loss,
            parts.optimizer,
            config.seed,
            config.batch_size,
        )
        if backend == "torch":
            self.engine = TorchEngine(
                model, loss, optimizer, seed=seed, device="cpu", batch_size=batch, **options
            )
        else:
            self.engine = make_engine(
                backend, model, loss, optimizer, seed=seed, device="cpu", batch_size=batch
            )
        self.engine.begin()
        self._batches = self._epochs(batches, parts.transform, float(parts.optimizer.lr), overlap)

    def _epochs(
        self, batches: Any, transform: Any, lr: float, overlap: bool
    ) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
        """The augmented batches of epoch after epoch, each epoch begun as ``fit`` begins it."""
        epoch = 0
        while True:
            epoch += 1
            self._compiled += float(getattr(self.engine, "compile_seconds", 0.0))  # reset by begin_epoch
            self.engine.begin_epoch(epoch, lr)
            yield from augmented(batches.loader, transform, batches.rngs["augment"], overlap=overlap)

    def __call__(self) -> None:
        if self.engine is None:
            next(self._batches)  # the plain script's next step
            return
        xb, yb = next(self._batches)  # (B, C, H, W) augmented, (B,)
        self.engine.train_step(xb, yb)

    @property
    def compile_seconds(self) -> float:
        """Seconds ``torch.compile`` took so far (0 for the other lines)."""
        return self._compiled + float(getattr(self.engine, "compile_seconds", 0.0))

    def close(self) -> None:
        """End training as ``fit`` does (the NumPy engine restores the first layer's flag)."""
        if self.engine is not None:
            self.engine.end(True)
        self._batches.close()  # stops a prefetching thread


def lines_to_time(lines: tuple[str, ...], print_fn: Callable[[str], None]) -> list[str]:
    """``lines`` without those that need torch when it is not installed (one line says so)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        kept = [line for line in lines if LINES[line]["backend"] == "numpy"]
        if len(kept) < len(lines):
            print_fn("torch not installed: no torch lines, no ratios (pip install 'cnnlab[torch]')")
        return kept
    return list(lines)


def run_recipe(
    name: str,
    steps: int = 10,
    rounds: int = 5,
    data_dir: str | None = None,
    cpu_clock: bool = False,
    print_fn: Callable[[str], None] = print,
    lines: tuple[str, ...] = DEFAULT_LINES,
    whole_epoch: bool = False,
    memory: bool = True,
) -> list[dict[str, Any]]:
    """Time real training steps of recipe ``name`` for each of ``lines``; print the table.

    ``steps`` x ``rounds`` steps are timed per line (``whole_epoch``: ``steps`` is set so
    that they add up to one epoch). ``cpu_clock``: every line on ONE thread (BLAS, torch),
    timed by the CPU time of the process (as ``cnnlab bench --cpu-clock``). ``memory``: the
    peak resident memory of each line, from a fresh process per line. Returns one row per
    line (see ``format_rows``).
    """
    config = recipe_config(name, data_dir)
    data = load_recipe_data(name, config)
    chosen = lines_to_time(lines, print_fn)
    with contextlib.ExitStack() as stack:
        clock: Callable[[], float] = time.perf_counter
        if cpu_clock:
            stack.enter_context(benchmark.one_thread())
            stack.enter_context(_torch_threads(1))
            clock = time.process_time
        steppers = [RecipeStep(config, data, line) for line in chosen]
        if whole_epoch:
            steps = math.ceil(steppers[0].steps_per_epoch / rounds)
        try:
            _print_header(name, config, data, steppers, rounds, steps, cpu_clock, print_fn)
            samples: dict[str, list[float]] = {}
            times = benchmark.time_interleaved(
                {s.label: s for s in steppers}, rounds, steps, warmup=WARMUP, clock=clock, samples=samples
            )
        finally:
            for stepper in steppers:
                stepper.close()
    plain_s = times.get("plain")
    rows = []
    for stepper in steppers:
        sec, timed = times[stepper.label], samples[stepper.label]
        mean = math.fsum(timed) / len(timed)
        rows.append(
            {
                "recipe": name,
                "engine": stepper.label,
                "batch_size": config.batch_size,
                "ms": sec * 1e3,
                "mean_ms": mean * 1e3,
                "steps_per_s": 1 / sec,
                "steps_per_epoch": stepper.steps_per_epoch,
                "timed_steps": len(timed),
                "epoch_s": stepper.steps_per_epoch * mean,
                "ratio_vs_plain": sec / plain_s if plain_s else float("nan"),
                "peak_rss_mb": peak_rss_mb(name, stepper.label, data_dir) if memory else float("nan"),
                "compile_s": stepper.compile_seconds,
            }
        )
    print_fn(format_rows(rows))
    for row in rows:
        if row["compile_s"]:
            print_fn(
                f"{row['engine']}: torch.compile took {row['compile_s']:.1f} s in the warm-up (not timed)"
            )
    return rows


def peak_rss_mb(name: str, line: str, data_dir: str | None = None, steps: int = WARMUP) -> float:
    """Peak resident memory (MiB) of a fresh process that builds ``line`` and runs ``steps`` steps.

    VmHWM from /proc (ru_maxrss where there is none; on Linux it survives fork+exec, so the
    child would report the parent's peak): the data, the model, the optimizer, the batches.
    """
    code = (
        "import resource\n"
        "from cnnlab.process import tune_process; tune_process()  # as the parent runs\n"
        "from cnnlab.cli.bench_recipe import RecipeStep, load_recipe_data, recipe_config\n"
        f"config = recipe_config({name!r}, {data_dir!r})\n"
        f"step = RecipeStep(config, load_recipe_data({name!r}, config), {line!r})\n"
        f"for _ in range({steps}): step()\n"
        "step.close()\n"
        "try:\n"
        "    row = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    print(int(row.split()[1]))\n"
        "except (OSError, IndexError):\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


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
    first = steppers[0]  # every line trains on the same split
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
    print_fn(f"machine: {benchmark.cores()} cores, load average {_load()}; BLAS: {benchmark.blas_info()}")
    print_fn(f"numpy {np.__version__}, torch {torch_version}")
    print_fn(benchmark.env_line())
    clock = "CPU time of the process, every line on 1 thread (--cpu-clock)" if cpu_clock else "wall clock"
    timed = rounds * steps
    extrapolated = (
        f"the whole epoch timed ({timed} steps)"
        if timed >= first.steps_per_epoch
        else f"EXTRAPOLATED from {timed} of {first.steps_per_epoch} steps"
    )
    print_fn(
        f"timed: {rounds} interleaved rounds x {steps} steps per line after {WARMUP} warm-up steps, {clock}; "
        f"ms/step: median; epoch s = steps per epoch x mean step, {extrapolated}; no validation pass; "
        "x plain: median step / the plain PyTorch script's; peak MiB: VmHWM of a fresh process per line"
    )


def _load() -> str:
    """The 1-minute load average (the machine's other work), or "unknown"."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        return "unknown"


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The table of ``run_recipe``'s rows: line, ms/step, epoch s, x plain, peak MiB.

    Example:
        >>> row = {"engine": "torch", "ms": 40.0, "epoch_s": 16.88, "ratio_vs_plain": 0.75,
        ...        "peak_rss_mb": 612.0}
        >>> print(format_rows([row]).splitlines()[-1])
        torch               40.0     16.9     0.75     612
    """
    head = f"{'line':<14}{'ms/step':>10}{'epoch s':>9}{'x plain':>9}{'peak MiB':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        mib = r["peak_rss_mb"]
        lines.append(
            f"{r['engine']:<14}{r['ms']:>10.1f}{r['epoch_s']:>9.1f}{r['ratio_vs_plain']:>9.2f}"
            f"{'-' if math.isnan(mib) else f'{mib:.0f}':>9}"
        )
    return "\n".join(lines)
