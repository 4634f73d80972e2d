"""The classic zoo against PyTorch eager: ResNet-50 inference and a ResNet-18 train step.

Issue 26's cases: ResNet-50 inference at 224x224, batch 8 (eval mode, forward only) and a
ResNet-18 train step at 64x64, batch 32 (forward, softmax cross-entropy, backward, SGD with
momentum), float32. The PyTorch side is the same network with the same weights
(``cnnlab.interop.to_torch``: torchvision's layout and modules, run eagerly). Each
(case, engine) line runs in a fresh process, so its peak memory (VmHWM) is its own; the
time is the median of ``--repeats`` steps after one warm-up step. The machine's load
average is printed before and after: the ratio, not the seconds, is what carries over.

Run:

    python benchmarks/bench_classic.py
    python benchmarks/bench_classic.py --repeats 5 --cases resnet18-train
    python benchmarks/bench_classic.py --threads 1   # one BLAS / torch thread each (a loaded machine)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.cli.benchmark import blas_info
from cnnlab.interop.torch import to_torch
from cnnlab.layers.base import Layer
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models.classic import resnet18, resnet50
from cnnlab.optim.sgd import SGD
from cnnlab.process import tune_process

#: case -> (builder, batch, input size, classes, train step?)
CASES: dict[str, tuple[Callable[..., Layer], int, int, int, bool]] = {
    "resnet50-infer": (resnet50, 8, 224, 1000, False),
    "resnet18-train": (resnet18, 32, 64, 10, True),
}
ENGINES = ("numpy", "torch")


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def numpy_step(model: Layer, x: np.ndarray, y: np.ndarray, train: bool) -> Callable[[], object]:
    if not train:
        model.eval()
        return lambda: model.forward(x)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()

    return step


def torch_step(model: Layer, x: np.ndarray, y: np.ndarray, train: bool) -> Callable[[], object]:
    import torch

    module = to_torch(model)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if not train:
        module.eval()

        def infer() -> Any:
            with torch.inference_mode():
                return module(xt)

        return infer
    opt = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()

    return step


def child(case: str, engine: str, repeats: int, threads: int | None) -> None:
    """Time one (case, engine) in this process and print one JSON line."""
    tune_process()  # as cnnlab train runs
    if threads is not None and engine == "torch":
        import torch

        torch.set_num_threads(threads)
    build, batch, size, classes, train = CASES[case]
    model = build(3, size, classes, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    step = (numpy_step if engine == "numpy" else torch_step)(model, x, y, train)
    step()  # warm-up: workspaces, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(times), "peak_mib": peak_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="threads of each engine (default: theirs)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.repeats, args.threads)
        return
    import torch

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cores {os.cpu_count()}")
    threads = args.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, threads {threads}; NumPy's BLAS: {blas_info()}")
    print(f"{'case':<16} {'engine':<7} {'s/step':>8} {'peak MiB':>9} {'x torch':>8}")
    for case in args.cases.split(","):
        results = {}
        for engine in ENGINES:
            command = [sys.executable, __file__, "--child", case, engine, "--repeats", str(args.repeats)]
            env = dict(os.environ)
            if args.threads is not None:  # BLAS reads these when it loads, so they go in the child's env
                command += ["--threads", str(args.threads)]
                env.update(OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
            out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
            results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
        for engine in ENGINES:
            r = results[engine]
            ratio = r["seconds"] / results["torch"]["seconds"]
            print(f"{case:<16} {engine:<7} {r['seconds']:>8.3f} {r['peak_mib']:>9.0f} {ratio:>8.2f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
