"""What im2col + BLAS convolutions cost at the least, beside a PyTorch train step.

The NumPy engine computes each convolution as matrix products on an im2col column matrix
(``functional/conv.py``). Each conv of a train step needs: the forward product
``W (C_out, K) @ cols (K, P)``, the weight gradient ``dY (C_out, P) @ cols.T (P, K)``, the
input gradient ``W.T (K, C_out) @ dY (C_out, P)`` (not for the first layer, whose input
needs no gradient), and the column matrix written forward and backward (``K x P`` floats
each time; timed as a plain copy, which no im2col or col2im beats on the same arrays).
Here ``K = C_in * kh * kw`` and ``P = N * H_out * W_out``.

For every conv of a model this script times exactly those operations, alone, on
contiguous whole-batch operands, and prints per model:

- ``FLOP floor``: the convs' multiply-adds at the machine's square-GEMM rate: no BLAS-based
  engine is faster than this;
- ``shaped floor``: the sum of the timed products and copies, i.e. what OpenBLAS achieves
  on these shapes (thin products: 16-64 rows reuse each column only 16-64 times). It
  leaves out every other layer (BatchNorm, ReLU, pooling, Dense, the optimizer);
- the NumPy engine's whole train step and PyTorch NCHW's (same model and weights,
  interleaved in this process).

Run:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_numpy_floor.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_numpy_floor.py \\
        --models fashion --batch 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.cli.benchmark import MODELS, build, gemm_gflops, make_steps, time_interleaved
from cnnlab.layers.conv import Conv2D


def conv_shapes(model: str, batch: int) -> list[tuple[int, int, int, int]]:
    """``(C_out, K, P, first)`` of each Conv2D of ``model`` at ``batch``, in forward order.

    ``first`` is 1 for the convs that see the network's input (no input gradient).
    """
    net = build(model)
    found: list[tuple[int, int, int, int]] = []
    forward = Conv2D.forward

    def record(self: Conv2D, x: np.ndarray) -> np.ndarray:
        y = forward(self, x)  # (N, C_out, H_out, W_out)
        _, c_out, h, w = y.shape
        kh, kw = self._kernel
        first = int(x.shape[1:] == MODELS[model])
        found.append((c_out, self.in_channels * kh * kw, batch * h * w, first))
        return y

    Conv2D.forward = record
    try:
        net.forward(np.zeros((1, *MODELS[model]), dtype=np.float32))
    finally:
        Conv2D.forward = forward
    return found


def _median_seconds(op: Callable[[], Any], repeats: int) -> float:
    op()  # warm-up (first touch of the output)
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        op()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def conv_floor(c_out: int, k: int, p: int, first: int, repeats: int) -> dict[str, float]:
    """Seconds of each unavoidable operation of one conv's train step (float32)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((c_out, k), dtype=np.float32)  # (C_out, K)
    cols = rng.standard_normal((k, p), dtype=np.float32)  # (K, P)
    dy = rng.standard_normal((c_out, p), dtype=np.float32)  # (C_out, P)
    out_y = np.empty((c_out, p), np.float32)
    out_dw = np.empty((c_out, k), np.float32)
    out_dcols = np.empty((k, p), np.float32)
    copy_dst = np.empty_like(cols)
    times = {
        "forward": _median_seconds(lambda: np.matmul(w, cols, out=out_y), repeats),
        "dW": _median_seconds(lambda: np.matmul(dy, cols.T, out=out_dw), repeats),
        "cols copy": _median_seconds(lambda: np.copyto(copy_dst, cols), repeats),
    }
    if not first:
        times["dX"] = _median_seconds(lambda: np.matmul(w.T, dy, out=out_dcols), repeats)
        times["dcols copy"] = times["cols copy"]
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="small,resnet,fashion", help="comma-separated: small, resnet, fashion")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=9, help="timings per operation (median)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the whole steps")
    args = p.parse_args()
    peak = gemm_gflops()
    print(f"square float32 GEMM (1024): {peak:.0f} GFLOP/s")
    for model in args.models.split(","):
        print(f"\n{model}, batch {args.batch}: each conv's products and copies (ms)")
        head = ("C_out", "K", "P", "fwd", "dW", "dX", "copies", "sum", "GF/s")
        print(" ".join(f"{h:>{w}}" for h, w in zip(head, (6, 5, 8, 6, 6, 6, 6, 6, 5), strict=True)))
        shaped = flops = 0.0
        for c_out, k, n_cols, first in conv_shapes(model, args.batch):
            t = conv_floor(c_out, k, n_cols, first, args.repeats)
            products = 2.0 * c_out * k * n_cols * (2 if first else 3)  # FLOPs of fwd, dW (, dX)
            total = sum(t.values())
            shaped, flops = shaped + total, flops + products
            copies = t["cols copy"] + t.get("dcols copy", 0.0)
            print(
                f"{c_out:>6} {k:>5} {n_cols:>8} {t['forward'] * 1e3:6.2f} {t['dW'] * 1e3:6.2f} "
                f"{t.get('dX', 0.0) * 1e3:6.2f} {copies * 1e3:6.2f} {total * 1e3:6.2f} "
                f"{products / (total - copies) / 1e9:5.0f}"
            )
        steps = make_steps(args.batch, True, ["cnnlab", "torch"], model)
        med = time_interleaved(steps, rounds=args.rounds, per_round=3)
        torch_ms, numpy_ms = med["torch"] * 1e3, med["cnnlab"] * 1e3
        floor_ms = flops / peak / 1e6
        print(f"torch NCHW step {torch_ms:.1f} ms; as multiples of it:")
        print(f"  FLOP floor of the convs   {floor_ms:6.1f} ms  {floor_ms / torch_ms:.2f}x")
        print(f"  shaped floor of the convs {shaped * 1e3:6.1f} ms  {shaped * 1e3 / torch_ms:.2f}x")
        print(f"  NumPy engine, whole step  {numpy_ms:6.1f} ms  {numpy_ms / torch_ms:.2f}x")


if __name__ == "__main__":
    main()
