"""One Conv2D layer, forward + backward, on each kernel tier (NumPy vs compiled), as ratios.

The convolutions of the reference models (``small``, the zoo ``resnet``, the fashion
recipe's ``vgg(widths=[16, 64])``), float32, timed in interleaved rounds in one process;
the median of all rounds is printed. Inputs and gradients are NCHW views of channel-first
memory, as a conv's output is inside a network (a contiguous NCHW input costs the NumPy
tier a transposing copy it never pays in training). A layer timed alone leaves out the
other layers' thread pools: the train step (``cnnlab bench``, ``--profile``) decides.
Needs the ``fast`` extra (numba). Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv_tiers.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv_tiers.py --cpu-clock
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from cnnlab.layers.conv import Conv2D

# (model, C_in, C_out, H, stride): the 3x3 convs (padding 1) of the reference models.
SHAPES = [
    ("small", 1, 32, 28, 1),
    ("small", 32, 64, 14, 1),
    ("resnet", 3, 16, 32, 1),
    ("resnet", 16, 16, 32, 1),
    ("resnet", 16, 32, 32, 2),
    ("resnet", 32, 32, 16, 1),
    ("resnet", 32, 64, 16, 2),
    ("resnet", 64, 64, 8, 1),
    ("fashion", 1, 16, 28, 1),
    ("fashion", 16, 16, 28, 1),
    ("fashion", 16, 64, 14, 1),
    ("fashion", 64, 64, 14, 1),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument(
        "--cpu-clock", action="store_true", help="1 thread each, process CPU time (shared machines)"
    )
    args = p.parse_args()
    clock = time.perf_counter
    if args.cpu_clock:
        import numba
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        numba.set_num_threads(1)
        clock = time.process_time
    rng = np.random.default_rng(0)
    what = "process CPU time, 1 thread" if args.cpu_clock else "wall clock"
    print(
        f"batch {args.batch}, float32, median of {args.rounds} interleaved rounds "
        f"(forward + backward), {what}"
    )
    print(f"{'model':<8}{'conv':<22}{'numpy ms':>9}{'compiled ms':>12}{'compiled/numpy':>15}")
    for model, C_in, C_out, H, stride in SHAPES:
        layer = Conv2D(C_in, C_out, 3, stride=stride, padding=1, bias=False, rng=0)
        layer.needs_input_grad = C_in > 3  # the first layer of a network skips dx
        # (N, C, H, W) views of (C, N, H, W) memory, as the engine passes them between layers.
        x = rng.standard_normal((C_in, args.batch, H, H)).astype(np.float32).transpose(1, 0, 2, 3)
        N, C, Ho, Wo = layer.output_shape(x.shape)
        dy = np.ones((C, N, Ho, Wo), np.float32).transpose(1, 0, 2, 3)
        times: dict[str, list[float]] = {"numpy": [], "compiled": []}
        for r in range(args.rounds + 1):
            for tier in times:
                os.environ["CNNLAB_KERNELS"] = tier
                t = clock()
                layer.forward(x)
                layer.backward(dy)
                if r:  # round 0 warms up (and checks / compiles the compiled kernel)
                    times[tier].append(clock() - t)
        a, b = (statistics.median(times[k]) * 1e3 for k in ("numpy", "compiled"))
        name = f"{C_in}->{C_out} {H}x{H} s{stride}"
        print(f"{model:<8}{name:<22}{a:>9.1f}{b:>12.1f}{b / a:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
