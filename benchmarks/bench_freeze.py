"""Training-step time with and without frozen layers (transfer learning, cnnlab.layers.freeze).

A frozen prefix gets no backward at all (no weight gradients, no dL/dx), so a step costs the
forward pass plus the backward of the layers that train. Prints the median step time of the
same conv net (a VGG-style Sequential from the zoo, 3x32x32, batch 32, the NumPy engine)
unfrozen and with three freezes, as ratios to the unfrozen step measured in the same run.

Run: ``python benchmarks/bench_freeze.py [--steps 10]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models.zoo import build_model
from cnnlab.optim import SGD
from cnnlab.train.loop.engines.numpy_engine import NumpyEngine
from cnnlab.train.runs.finetune import freeze_upto


def step_seconds(freeze: str | None, steps: int) -> tuple[float, str]:
    model = build_model("vgg", in_channels=3, input_size=(32, 32), num_classes=10, rng=0)
    note = freeze_upto(model, freeze) if freeze is not None else "nothing frozen"
    engine = NumpyEngine(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.01, momentum=0.9))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)  # (B, C, H, W)
    y = rng.integers(0, 10, 32)
    engine.begin()
    engine.begin_epoch(1, 0.01)
    times = []
    for _ in range(steps + 2):  # the first two warm up the workspaces
        start = time.perf_counter()
        engine.train_step(x, y)
        times.append(time.perf_counter() - start)
    engine.end(True)
    return statistics.median(times[2:]), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    model = build_model("vgg", in_channels=3, input_size=(32, 32), num_classes=10, rng=0)
    print(model)
    base, _ = step_seconds(None, args.steps)
    print(f"{'--freeze':<14} {'step ms':>8} {'ratio':>6}  what")
    print(f"{'(none)':<14} {base * 1e3:8.1f} {1.0:6.2f}  nothing frozen")
    last_conv = max(i for i, layer in enumerate(model.layers) if layer.name == "Conv2D")
    first_conv = min(i for i, layer in enumerate(model.layers) if layer.name == "Conv2D")
    for freeze in (str(first_conv + 2), str(last_conv - 1), "all-but-head"):
        seconds, note = step_seconds(freeze, args.steps)
        print(f"{freeze:<14} {seconds * 1e3:8.1f} {seconds / base:6.2f}  {note}")


if __name__ == "__main__":
    main()
