"""Train step of a bench model by layer kind (ms), beside PyTorch NCHW eager in the same process.

Issue 25: where the NumPy engine's time goes outside the convolutions. Runs the model as
``fit`` trains it (``fuse``; the first conv skips dL/dx), with the recipe's optimizer (Adam),
and times every top-level layer's forward and backward, the loss and the optimizer update;
the rows are summed per layer kind (a fused pair is one kind, e.g. ``BatchNormReLU``).
PyTorch's train step of the same network (``to_torch``, NCHW, eager, ``torch.optim.Adam``)
is timed in the same process, interleaved step by step, for the whole-step ratio.

    python benchmarks/bench_layer_kinds.py --model fashion --batch 128 --steps 15
    python benchmarks/bench_layer_kinds.py --cpu-clock --json   # one thread each, CPU time

The process is tuned as ``fit`` tunes it (``tune_process``). ``--cpu-clock``: BLAS and torch
on one thread, timed by the process's CPU time (a machine shared with other jobs). Medians
over the steps after two warm-up steps. Compare two versions of the code by running this in
alternating processes (``PYTHONPATH=OTHER/src``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab.cli import benchmark
from cnnlab.layers.fuse import fuse
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.adam import Adam
from cnnlab.process import tune_process


def cnnlab_step(model: str, batch: int, clock: Callable[[], float]) -> Callable[[], dict[str, float]]:
    """A train step that returns seconds per layer kind (plus "loss", "optimizer")."""
    net = fuse(benchmark.build(model))
    if hasattr(net.layers[0], "needs_input_grad"):
        net.layers[0].needs_input_grad = False
    loss = SoftmaxCrossEntropy()
    opt = Adam(net.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *benchmark.MODELS[model]), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    kinds = [type(layer).__name__ for layer in net.layers]

    def step() -> dict[str, float]:
        times: dict[str, float] = defaultdict(float)
        h = x
        for kind, layer in zip(kinds, net.layers, strict=True):
            t = clock()
            h = layer.forward(h)
            times[kind] += clock() - t
        t = clock()
        loss.forward(h, y)
        d = loss.backward()
        times["loss"] += clock() - t
        for kind, layer in zip(reversed(kinds), reversed(net.layers), strict=True):
            t = clock()
            d = layer.backward(d)
            times[kind] += clock() - t
            if d is None:
                break
        t = clock()
        opt.step()
        times["optimizer"] += clock() - t
        return times

    return step


def torch_step(model: str, batch: int) -> Callable[[], None]:
    import torch

    net = benchmark.to_torch(benchmark.build(model)).float()
    x = torch.rand(batch, *benchmark.MODELS[model])
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    lossf = torch.nn.CrossEntropyLoss()
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        lossf(net(x), y).backward()
        opt.step()

    return step


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n):
        yield


def measure(model: str, batch: int, steps: int, cpu_clock: bool, with_torch: bool) -> dict[str, Any]:
    tune_process()  # as the NumPy engine does before training
    clock = time.process_time if cpu_clock else time.perf_counter
    torch_run = None
    if with_torch:
        import torch

        torch.set_num_threads(1 if cpu_clock else benchmark.cores())
        torch_run = torch_step(model, batch)
    ours = cnnlab_step(model, batch, clock)
    rows: list[dict[str, float]] = []
    totals, torch_totals = [], []
    with threads(1 if cpu_clock else None):
        blas = benchmark.blas_info()
        for i in range(steps + 2):
            t = clock()
            row = ours()
            total = clock() - t
            if torch_run is not None:
                t = clock()
                torch_run()
                torch_total = clock() - t
            if i >= 2:  # warm-up excluded
                rows.append(row)
                totals.append(total)
                if torch_run is not None:
                    torch_totals.append(torch_total)
    kinds = list(rows[0])
    result: dict[str, Any] = {
        "model": model,
        "batch": batch,
        "clock": "cpu, 1 thread" if cpu_clock else f"wall, {benchmark.cores()} threads",
        "blas": blas,
        "kinds_ms": {k: statistics.median(r[k] for r in rows) * 1e3 for k in kinds},
        "step_ms": statistics.median(totals) * 1e3,
    }
    if torch_totals:
        result["torch_ms"] = statistics.median(torch_totals) * 1e3
        result["ratio"] = result["step_ms"] / result["torch_ms"]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fashion", choices=sorted(benchmark.MODELS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--cpu-clock", action="store_true", help="one thread each, process CPU time")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = p.parse_args()
    r = measure(args.model, args.batch, args.steps, args.cpu_clock, not args.no_torch)
    if args.json:
        print(json.dumps(r))
        return
    print(f"{r['model']}, batch {r['batch']}, {r['clock']}; BLAS: {r['blas']}")
    for kind, ms in sorted(r["kinds_ms"].items(), key=lambda kv: -kv[1]):
        print(f"{kind:<16}{ms:>9.2f} ms")
    print(f"{'whole step':<16}{r['step_ms']:>9.2f} ms")
    if "torch_ms" in r:
        print(f"{'torch NCHW':<16}{r['torch_ms']:>9.2f} ms  (ratio {r['ratio']:.2f}x)")


if __name__ == "__main__":
    main()
