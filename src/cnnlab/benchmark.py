"""Speed of a training step: cnnlab against PyTorch, in one process, as ratios.

Used by ``benchmarks/bench_train_step.py`` and ``cnnlab bench``. Method: build the same
model in both libraries with the same weights, warm up, then time interleaved rounds
(cnnlab, torch NCHW, torch channels_last, ...) with a short pause between libraries so
their thread pools do not fight, and report the median of many steps. A float32 GEMM
timed in the same run gives the machine's attainable GFLOP/s. Peak RSS is measured in a
fresh subprocess per library (a shared process cannot tell whose memory is whose).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _small_torch(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def small_flops(batch: int) -> float:
    """Multiply-adds x2 of the `small` model's forward pass on 1x28x28 inputs."""
    conv1 = 28 * 28 * 32 * 9 * 1
    conv2 = 14 * 14 * 64 * 9 * 32
    dense = 3136 * 128 + 128 * 10
    return 2.0 * batch * (conv1 + conv2 + dense)


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


def _cnnlab_step(batch: int, train: bool) -> Callable[[], None]:
    from cnnlab.losses import SoftmaxCrossEntropy
    from cnnlab.models import build_model
    from cnnlab.optim import SGD

    model = build_model("small", in_channels=1, input_size=(28, 28), num_classes=10, rng=0)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    if hasattr(model.layers[0], "needs_input_grad"):
        model.layers[0].needs_input_grad = False  # the data needs no gradient

    def step() -> None:
        if train:
            loss.forward(model.forward(x), y)
            model.backward(loss.backward())
            opt.step()
        else:
            model.forward(x)

    if not train:
        model.eval()
    return step


def _torch_step(batch: int, train: bool, channels_last: bool) -> Callable[[], None]:
    import torch

    torch.manual_seed(0)
    model = _small_torch(torch)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()

    def step() -> None:
        if train:
            opt.zero_grad(set_to_none=True)
            lossf(model(x), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    return step


def make_steps(batch: int, train: bool, libs: list[str]) -> dict[str, Callable[[], None]]:
    steps: dict[str, Callable[[], None]] = {}
    for lib in libs:
        if lib == "cnnlab":
            steps[lib] = _cnnlab_step(batch, train)
        elif lib == "torch":
            steps[lib] = _torch_step(batch, train, channels_last=False)
        elif lib == "torch_cl":
            steps[lib] = _torch_step(batch, train, channels_last=True)
    return steps


def time_interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int,
                     warmup: int = 3, pause: float = 0.05) -> dict[str, float]:
    """Median seconds per step of each callable, timed in interleaved rounds."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(pause)
            for _ in range(per_round):
                t = time.perf_counter()
                step()
                samples[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) for name, v in samples.items()}


def peak_rss_mb(lib: str, batch: int, steps: int = 5) -> float:
    """Peak resident memory (MiB) of a fresh process running ``steps`` train steps."""
    code = (
        "import resource, sys; from cnnlab.benchmark import make_steps;"
        f"s = make_steps({batch}, True, [{lib!r}])[{lib!r}]\n"
        f"for _ in range({steps}): s()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl)"
    infos = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
             f"threads={i.get('num_threads')}" for i in threadpool_info()]
    return "; ".join(infos)


def run(batches: tuple[int, ...] = (32, 128, 512), rounds: int = 5, libs: list[str] | None = None,
        memory: bool = True, print_fn: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Time cnnlab against torch and print the ratio table; returns the rows."""
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        libs = libs or ["cnnlab", "torch", "torch_cl"]
        torch_version = torch.__version__
    except ImportError:
        libs, torch_version = ["cnnlab"], "not installed"
    gflops = gemm_gflops()
    print_fn(f"machine: {os.cpu_count()} cores; BLAS: {blas_info()}")
    print_fn(f"numpy {np.__version__}, torch {torch_version}; float32 GEMM: {gflops:.0f} GFLOP/s")
    print_fn(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    rows = []
    for train in (True, False):
        for batch in batches:
            per_round = max(2, 256 // batch)
            times = time_interleaved(make_steps(batch, train, libs), rounds, per_round)
            flops = small_flops(batch) * (3 if train else 1)
            for lib, sec in times.items():
                rows.append({
                    "mode": "train" if train else "forward", "batch": batch, "lib": lib,
                    "ms": sec * 1e3, "images_per_s": batch / sec,
                    "gflops": flops / sec / 1e9, "vs_gemm": flops / sec / 1e9 / gflops,
                    "ratio_vs_torch": sec / times["torch"] if "torch" in times else float("nan"),
                })
    if memory:
        for lib in libs:
            mb = peak_rss_mb(lib, 128)
            for row in rows:
                if row["lib"] == lib:
                    row["peak_rss_mb_b128"] = mb
    print_fn(format_table(rows))
    return rows


def profile(batch: int = 128, steps: int = 20) -> str:
    """Per-layer median forward and backward milliseconds of a cnnlab train step."""
    from cnnlab.losses import SoftmaxCrossEntropy
    from cnnlab.models import build_model

    model = build_model("small", in_channels=1, input_size=(28, 28), num_classes=10, rng=0)
    if hasattr(model.layers[0], "needs_input_grad"):
        model.layers[0].needs_input_grad = False
    loss = SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    fwd: dict[int, list[float]] = {i: [] for i in range(len(model.layers))}
    bwd: dict[int, list[float]] = {i: [] for i in range(len(model.layers))}
    for _ in range(steps):
        h = x
        for i, layer in enumerate(model.layers):
            t = time.perf_counter()
            h = layer.forward(h)
            fwd[i].append(time.perf_counter() - t)
        loss.forward(h, y)
        g = loss.backward()
        for i in reversed(range(len(model.layers))):
            t = time.perf_counter()
            g = model.layers[i].backward(g)
            bwd[i].append(time.perf_counter() - t)
            if g is None:
                break
    med = {i: (statistics.median(fwd[i]) * 1e3, statistics.median(bwd[i] or [0.0]) * 1e3)
           for i in fwd}
    total = sum(f + b for f, b in med.values())
    lines = [f"per-layer profile, batch {batch} (median of {steps} steps; total {total:.1f} ms)",
             f"{'layer':<40}{'fwd ms':>8}{'bwd ms':>8}{'share':>7}"]
    for i, (f, b) in med.items():
        lines.append(f"{i}: {model.layers[i]!r:<37}{f:>8.2f}{b:>8.2f}{100 * (f + b) / total:>6.0f}%")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'mode':<8}{'batch':>6}  {'library':<10}{'ms/step':>9}{'img/s':>9}{'GFLOP/s':>9}" \
           f"{'%GEMM':>7}{'x torch':>9}{'RSS MiB':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['mode']:<8}{r['batch']:>6}  {r['lib']:<10}{r['ms']:>9.1f}{r['images_per_s']:>9.0f}"
            f"{r['gflops']:>9.1f}{100 * r['vs_gemm']:>6.0f}%{r['ratio_vs_torch']:>9.2f}"
            f"{r.get('peak_rss_mb_b128', float('nan')):>9.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="32,128,512")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--profile", action="store_true", help="per-layer forward/backward breakdown")
    args = p.parse_args(argv)
    if args.profile:
        print(profile(int(args.batches.split(",")[0])))
        return 0
    rows = run(tuple(int(b) for b in args.batches.split(",")), args.rounds, memory=not args.no_memory)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0
