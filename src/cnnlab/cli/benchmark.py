"""Speed of a training step: cnnlab against PyTorch, in one process, as ratios.

Used by ``cnnlab bench`` and ``benchmarks/bench_train_step.py`` (both parse their options
with ``cli/bench_cmd.py``). Method: build the same
model in both libraries with the same weights (``cnnlab.interop.to_torch``), warm up, then
time interleaved rounds (cnnlab, torch NCHW, torch channels_last) with a short pause
between libraries so their thread pools do not fight, and report the median of many
steps. A float32 GEMM timed in the same run gives the machine's attainable GFLOP/s. Peak
RSS is measured in a fresh subprocess per library (a shared process cannot tell whose
memory is whose). Reference models: ``small`` on 1x28x28 and ``resnet`` on 3x32x32.
The process is tuned as ``cnnlab train`` tunes it (``cnnlab.process.tune_process``; the
command line calls it before ``cnnlab bench`` runs; ``main`` here does too).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab import process
from cnnlab.interop.torch import to_torch
from cnnlab.layers.fuse import FUSED_LAYERS, ResidualReLU, fuse
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential, _one_line
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models import build_model
from cnnlab.optim import SGD

#: name -> input shape (C, H, W) of the reference models.
MODELS: dict[str, tuple[int, int, int]] = {
    "small": (1, 28, 28),
    "resnet": (3, 32, 32),
    "fashion": (1, 28, 28),
}
#: bench name -> (zoo model, its arguments) where they differ: "fashion" is the network of
#: ``cnnlab train --recipe fashion`` (train/runs/recipes.py).
ZOO_ARGS: dict[str, tuple[str, dict[str, Any]]] = {"fashion": ("vgg", {"widths": [16, 64], "dropout": 0.0})}


def cores() -> int:
    """CPU cores this process may run on (respects taskset / container limits)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build(model: str) -> Any:
    """The cnnlab reference model (seeded), float32."""
    c, h, w = MODELS[model]
    name, kwargs = ZOO_ARGS.get(model, (model, {}))
    return build_model(name, in_channels=c, input_size=(h, w), num_classes=10, rng=0, **kwargs)


def forward_flops(model: str, batch: int) -> float:
    """Forward FLOPs of ``batch`` examples (``Layer.flops``: a multiply-add counts as 2)."""
    return float(build(model).flops((1, *MODELS[model]))) * batch


def gemm_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Attainable float32 GEMM rate on this machine (GFLOP/s), median of ``repeats``."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def _cnnlab_step(batch: int, train: bool, model: str = "small") -> Callable[[], None]:
    net = fuse(build(model))  # as fit trains it
    loss = SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *MODELS[model]), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if hasattr(net.layers[0], "needs_input_grad"):
        net.layers[0].needs_input_grad = False  # the data needs no gradient (torch: x.requires_grad=False)

    def step() -> None:
        if train:
            loss.forward(net.forward(x), y)
            net.backward(loss.backward())
            opt.step()
        else:
            net.forward(x)

    if not train:
        net.eval()
    return step


def _torch_model(torch: Any, model: str) -> Any:
    return to_torch(build(model)).float()


def _torch_step(batch: int, train: bool, channels_last: bool, model: str = "small") -> Callable[[], None]:
    import torch

    net = _torch_model(torch, model)
    x = torch.rand(batch, *MODELS[model])
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    net.train(train)

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            lossf(net(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                net(x)

    return step


def make_steps(
    batch: int, train: bool, libs: list[str], model: str = "small"
) -> dict[str, Callable[[], None]]:
    steps: dict[str, Callable[[], None]] = {}
    for lib in libs:
        if lib == "cnnlab":
            steps[lib] = _cnnlab_step(batch, train, model)
        elif lib in ("torch", "torch_cl"):
            steps[lib] = _torch_step(batch, train, lib == "torch_cl", model)
    return steps


def time_interleaved(
    steps: dict[str, Callable[[], None]],
    rounds: int,
    per_round: int,
    warmup: int = 3,
    pause: float = 0.05,
    clock: Callable[[], float] = time.perf_counter,
    samples: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Median seconds per step of each callable, timed in interleaved rounds (wall clock by default).

    ``samples``: if given, filled with every timed step's seconds, per name.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples = {} if samples is None else samples
    samples.update({name: [] for name in steps})
    names = list(steps)
    for r in range(rounds):
        # Each round starts at another library, so none always runs right after the same
        # one (a pool still spinning from the previous library slows whoever comes next).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            step = steps[name]
            time.sleep(pause)
            for _ in range(per_round):
                t = clock()
                step()
                samples[name].append(clock() - t)
    return {name: statistics.median(v) for name, v in samples.items()}


def peak_rss_mb(lib: str, batch: int, model: str = "small", steps: int = 5) -> float:
    """Peak resident memory (MiB) of a fresh process running ``steps`` train steps."""
    # VmHWM, not ru_maxrss: on Linux ru_maxrss survives fork+exec, so the child would report
    # the (larger) parent's peak.
    code = (
        "import resource; from cnnlab.cli.benchmark import make_steps\n"
        "from cnnlab.process import tune_process; tune_process()  # as the parent runs\n"
        f"s = make_steps({batch}, True, [{lib!r}], {model!r})[{lib!r}]\n"
        f"for _ in range({steps}): s()\n"
        "try:\n"
        "    line = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    print(int(line.split()[1]))\n"
        "except (OSError, IndexError):\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl)"
    infos = [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} threads={i.get('num_threads')}"
        for i in threadpool_info()
    ]
    return "; ".join(infos)


def run(
    batches: tuple[int, ...] = (32, 128, 512),
    rounds: int = 5,
    libs: list[str] | None = None,
    memory: bool = True,
    models: tuple[str, ...] = ("small", "resnet"),
    modes: tuple[str, ...] = ("train", "forward"),
    print_fn: Callable[[str], None] = print,
    cpu_clock: bool = False,
) -> list[dict[str, Any]]:
    """Time cnnlab against torch and print the ratio table; returns the rows.

    ``cpu_clock``: every library on ONE thread (BLAS, torch), timed by the CPU time
    of the process (``time.process_time``) instead of the wall clock. On a machine shared
    with other jobs that measures the work each library does, not what the other jobs leave.
    """
    if cpu_clock:
        with one_thread():
            return _run(batches, rounds, libs, memory, models, modes, print_fn, 1, time.process_time)
    return _run(batches, rounds, libs, memory, models, modes, print_fn, cores(), time.perf_counter)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS on one thread inside (``--cpu-clock``); its earlier setting after."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def env_line() -> str:
    """The environment variables that change the timings, with their values, and whether
    freed memory is kept for reuse (``cnnlab.process.tune_process``)."""
    names = ("OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "CNNLAB_TUNE_PROCESS")
    values = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in names)
    return f"{values}; malloc keeps freed memory: {'yes' if process.tuned()['malloc'] else 'no'}"


def _run(
    batches: tuple[int, ...],
    rounds: int,
    libs: list[str] | None,
    memory: bool,
    models: tuple[str, ...],
    modes: tuple[str, ...],
    print_fn: Callable[[str], None],
    threads: int,
    clock: Callable[[], float],
) -> list[dict[str, Any]]:
    ours = ["cnnlab"]
    try:
        import torch

        torch.set_num_threads(threads)
        libs = libs or [*ours, "torch", "torch_cl"]
        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        libs, torch_version = libs or ours, "not installed"
    gflops = gemm_gflops()
    print_fn(f"machine: {cores()} cores; BLAS: {blas_info()}")
    if clock is time.process_time:
        print_fn("clock: CPU time of the process, every library on 1 thread (--cpu-clock)")
    print_fn(f"numpy {np.__version__}, torch {torch_version}; float32 GEMM: {gflops:.0f} GFLOP/s")
    print_fn(env_line())
    rows = []
    for model in models:
        for mode in modes:
            train = mode == "train"
            for batch in batches:
                per_round = max(2, 256 // batch)
                times = time_interleaved(
                    make_steps(batch, train, libs, model), rounds, per_round, clock=clock
                )
                flops = forward_flops(model, batch) * (3 if train else 1)
                for lib, sec in times.items():
                    rows.append(
                        {
                            "model": model,
                            "mode": mode,
                            "batch": batch,
                            "lib": lib,
                            "ms": sec * 1e3,
                            "images_per_s": batch / sec,
                            "gflops": flops / sec / 1e9,
                            "vs_gemm": flops / sec / 1e9 / gflops,
                            "ratio_vs_torch": sec / times["torch"] if "torch" in times else float("nan"),
                        }
                    )
        if memory:
            for lib in libs:
                mb = peak_rss_mb(lib, 128, model)
                for row in rows:
                    if row["lib"] == lib and row["model"] == model:
                        row["peak_rss_mb_b128"] = mb
    print_fn(format_table(rows))
    return rows


def profile(batch: int = 128, steps: int = 20, model: str = "small") -> str:
    """Per-layer median forward and backward milliseconds of a cnnlab train step.

    Top-level layers as ``fit`` runs them (``cnnlab.layers.fuse``): a fused pair
    (ReLU -> MaxPool2D, BatchNorm -> ReLU, Residual -> ReLU) is one row. A container (e.g.
    a ``Residual`` block) is followed by indented rows for its leaf layers, named by the
    model's paths; the container's own time includes theirs (and the residual add).
    """
    original = build(model)
    net = fuse(original)
    if hasattr(net.layers[0], "needs_input_grad"):
        net.layers[0].needs_input_grad = False
    loss = SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    x = rng.random((batch, *MODELS[model]), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    groups: list[list[int]] = []  # each row: the model's layer indices it runs (two for a fused pair)
    for layer in net.layers:
        first = groups[-1][-1] + 1 if groups else 0
        groups.append([first, first + 1] if isinstance(layer, FUSED_LAYERS) else [first])
    fwd: list[list[float]] = [[] for _ in groups]
    bwd: list[list[float]] = [[] for _ in groups]
    leaves = {g: _time_leaves(layer, original.layers[groups[g][0]]) for g, layer in enumerate(net.layers)}
    for _ in range(steps):
        h = x
        for g, layer in enumerate(net.layers):
            t = time.perf_counter()
            h = layer.forward(h)
            fwd[g].append(time.perf_counter() - t)
        loss.forward(h, y)
        d = loss.backward()
        for g in reversed(range(len(groups))):
            t = time.perf_counter()
            d = net.layers[g].backward(d)
            bwd[g].append(time.perf_counter() - t)
            if d is None:
                break
    med = [
        (statistics.median(f[2:] or f) * 1e3, statistics.median(b[2:] or b or [0.0]) * 1e3)
        for f, b in zip(fwd, bwd, strict=True)
    ]
    total = sum(f + b for f, b in med)
    lines = [
        f"per-layer profile, {model}, batch {batch} (median of {steps} steps; total {total:.1f} ms)",
        f"{'layer':<48}{'fwd ms':>8}{'bwd ms':>8}{'share':>7}",
    ]
    for g, (group, (f, b)) in enumerate(zip(groups, med, strict=True)):
        head, *rest = (f"{i}: {_one_line(original.layers[i])}" for i in group)
        tail = "".join(f" + {s}" for s in rest)  # a fused pair's second layer stays readable
        name = head + tail if len(head + tail) <= 47 else head[: 44 - len(tail)] + "..." + tail
        lines.append(f"{name:<48}{f:>8.2f}{b:>8.2f}{100 * (f + b) / total:>6.0f}%")
        for path, (what, lf, lb) in leaves[g].items():
            f, b = (statistics.median(v[2:] or v or [0.0]) * 1e3 for v in (lf, lb))
            name = f"  {group[0]}.{path}: {what}"
            name = name if len(name) <= 47 else name[:44] + "..."
            lines.append(f"{name:<48}{f:>8.2f}{b:>8.2f}{100 * (f + b) / total:>6.0f}%")
    return "\n".join(lines)


def _model_leaves(view: Any, model: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """The leaves of a fused ``view`` inside a container, named as in ``model``.

    Yields ``(the model's dotted path(s), the model's layer(s) in one line, the view's leaf)``.
    A fused pair stands for two consecutive layers of the model (``"1+2"``); a fused
    Residual -> ReLU is walked into (its block's layers run on their own). The model's
    top-level layer itself is not yielded (it has its own row).
    """
    if isinstance(view, Sequential):
        i = 0
        for layer in view.layers:
            if isinstance(layer, ResidualReLU):
                yield from _model_leaves(layer.residual, model.layers[i], f"{prefix}{i}.")
                i += 2
            elif isinstance(layer, FUSED_LAYERS):
                pair = f"{_one_line(model.layers[i])} + {_one_line(model.layers[i + 1])}"
                yield f"{prefix}{i}+{i + 1}", pair, layer
                i += 2
            else:
                yield from _model_leaves(layer, model.layers[i], f"{prefix}{i}.")
                i += 1
    elif isinstance(view, Residual):
        yield from _model_leaves(view.block, model.block, f"{prefix}block.")
        if view.shortcut is not None:
            yield from _model_leaves(view.shortcut, model.shortcut, f"{prefix}shortcut.")
    elif isinstance(view, ResidualReLU):
        yield from _model_leaves(view.residual, model, prefix)
    elif prefix:  # a leaf inside a container
        yield prefix.rstrip("."), _one_line(model), view


def _time_leaves(view: Any, model: Any) -> dict[str, tuple[str, list[float], list[float]]]:
    """Wrap every leaf inside a container so that its forward/backward times are recorded.

    Returns {the model's dotted path: (what it is, forward seconds, backward seconds)}; empty
    for a top-level leaf. A fused pair counts as one leaf (it runs its two layers' work
    itself). The wrappers are instance attributes of a profiling-only model.
    """
    found: dict[str, tuple[str, list[float], list[float]]] = {}
    for path, what, leaf in _model_leaves(view, model):
        f_times: list[float] = []
        b_times: list[float] = []
        found[path] = (what, f_times, b_times)
        for method, sink in (("forward", f_times), ("backward", b_times)):
            original = getattr(leaf, method)

            def timed(*args: Any, original: Any = original, sink: list[float] = sink) -> Any:
                t = time.perf_counter()
                out = original(*args)
                sink.append(time.perf_counter() - t)
                return out

            setattr(leaf, method, timed)
    return found


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'model':<8}{'mode':<8}{'batch':>6}  {'library':<12}{'ms/step':>9}{'img/s':>9}{'GFLOP/s':>9}"
        f"{'%GEMM':>7}{'x torch':>9}{'RSS MiB':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['model']:<8}{r['mode']:<8}{r['batch']:>6}  {r['lib']:<12}"
            f"{r['ms']:>9.1f}{r['images_per_s']:>9.0f}"
            f"{r['gflops']:>9.1f}{100 * r['vs_gemm']:>6.0f}%{r['ratio_vs_torch']:>9.2f}"
            f"{r.get('peak_rss_mb_b128', float('nan')):>9.0f}"
        )
    return "\n".join(lines)
