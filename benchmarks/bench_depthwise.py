"""Depthwise and grouped convolution: cnnlab's NumPy kernels vs PyTorch eager, in one run.

The case from issue 26: MobileNet's depthwise 3x3 (stride 1 and 2) on a (32, 64, 56, 56)
float32 batch, and a ShuffleNet-style grouped 1x1 for scale. Times are the median of
interleaved repeats; the ratio is cnnlab / torch (1.0 = as fast).

Run:

    python benchmarks/bench_depthwise.py
    python benchmarks/bench_depthwise.py --batch 8 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.layers.conv import Conv2D


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: buffers, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import torch

    N, C, S = args.batch, args.channels, args.size
    cases = [
        ("depthwise 3x3", Conv2D(C, C, 3, padding=1, groups=C, rng=0)),
        ("depthwise 3x3 stride 2", Conv2D(C, C, 3, stride=2, padding=1, groups=C, rng=0)),
        ("grouped 1x1, groups 4", Conv2D(C, C, 1, groups=4, rng=0)),
    ]
    x = np.random.default_rng(0).standard_normal((N, C, S, S)).astype(np.float32)
    print(f"input ({N}, {C}, {S}, {S}) float32, torch threads {torch.get_num_threads()}")
    print(f"{'layer':<24} {'pass':<18} {'cnnlab ms':>10} {'torch ms':>10} {'ratio':>6}")
    for name, layer in cases:
        for label, a, b in time_case(torch, layer, x, args.repeats):
            print(f"{name:<24} {label:<18} {a:>10.1f} {b:>10.1f} {a / b:>6.2f}")


def time_case(torch: Any, layer: Conv2D, x: np.ndarray, repeats: int) -> list[tuple[str, float, float]]:
    """(pass, cnnlab ms, torch ms) for forward and forward+backward, after checking the outputs agree."""
    C_in, C_out = layer.in_channels, layer.out_channels
    module = torch.nn.Conv2d(C_in, C_out, layer._kernel, layer._stride, layer._padding, groups=layer.groups)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(layer.params["weight"]))
        module.bias.copy_(torch.from_numpy(layer.params["bias"]))
    xt = torch.from_numpy(x).requires_grad_(True)
    dy = np.ones(layer.output_shape(x.shape), np.float32)
    dyt = torch.from_numpy(dy)

    def ours_fwd() -> object:
        return layer.forward(x)

    def ours_both() -> object:
        layer.forward(x)
        return layer.backward(dy)

    def torch_fwd() -> Any:
        with torch.no_grad():
            return module(xt)

    def torch_both() -> object:
        module.zero_grad()
        xt.grad = None
        module(xt).backward(dyt)
        return xt.grad

    assert np.allclose(ours_fwd(), torch_fwd().numpy(), rtol=1e-4, atol=1e-4), repr(layer)
    return [
        (label, median_ms(ours, repeats), median_ms(theirs, repeats))
        for label, ours, theirs in (
            ("forward", ours_fwd, torch_fwd),
            ("forward+backward", ours_both, torch_both),
        )
    ]


if __name__ == "__main__":
    main()
