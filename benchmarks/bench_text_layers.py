"""The text layers' two speed choices, each against its alternatives in the same run.

1. Embedding backward (the sparse-row gradient): ``np.add.at`` vs sort + ``np.add.reduceat``
   vs one ``np.bincount`` per dimension, on (N, L) tokens, a V-word vocabulary and D
   dimensions (default: (64, 200) x 10,000 x 300, float32; uniform and Zipf-distributed
   tokens, as words in real text are).
2. Conv1D forward + backward: cnnlab's kernel (the 2-D im2col machinery on (N, C, 1, L))
   vs a hand-written 1-D im2col + GEMM, and PyTorch's ``F.conv1d`` where installed, on the
   text CNN's shape (300 -> 100 channels, widths 3/4/5, 64 x 200 positions).

Timings are medians of interleaved rounds (``cnnlab.cli.benchmark.time_interleaved``); the
ratios are what to read on a busy machine.

Run:

    python benchmarks/bench_text_layers.py [--rounds 5] [--vocab 10000] [--dim 300]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.cli.benchmark import time_interleaved
from cnnlab.functional.conv import ConvWorkspace
from cnnlab.functional.conv1d import conv1d_backward_saved, conv1d_forward_saving
from cnnlab.functional.embedding import (
    embedding_backward,
    embedding_backward_add_at,
    embedding_backward_sort,
)


def bench_embedding(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    N, L, V, D = args.batch, args.length, args.vocab, args.dim
    dy = rng.standard_normal((N, D, L)).astype(np.float32)  # (N, D, L), as Conv1D hands it back
    print(f"Embedding backward: ({N}, {L}) tokens, V={V:,}, D={D}, float32 (median ms, ratio to add.at)")
    for dist in ("uniform", "zipf"):
        if dist == "uniform":
            idx = rng.integers(0, V, (N, L))
        else:
            idx = np.minimum(rng.zipf(1.3, (N, L)) - 1, V - 1)
        steps = {
            "add.at": lambda idx=idx: embedding_backward_add_at(dy, idx, V, 0),
            "sort+reduceat": lambda idx=idx: embedding_backward_sort(dy, idx, V, 0),
            "bincount (used)": lambda idx=idx: embedding_backward(dy, idx, V, 0),
        }
        ref = steps["add.at"]()
        for name, step in steps.items():
            err = float(np.abs(step() - ref).max())
            assert err < 1e-3, (name, err)
        times = time_interleaved(steps, rounds=args.rounds, per_round=3, warmup=1)
        base = times["add.at"]
        row = "  ".join(f"{k} {v * 1e3:6.1f} ({v / base:.2f}x)" for k, v in times.items())
        print(f"  {dist:8s} {len(np.unique(idx)):5d} distinct  {row}")


def conv1d_direct(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[Any, ...]:
    """A hand-written 1-D im2col + GEMM forward and backward (valid padding, stride 1)."""
    N, C, L = x.shape
    O, _, K = w.shape
    L_out = L - K + 1
    cols = np.empty((C, K, N, L_out), x.dtype)  # (C, K, N, L_out)
    cols[...] = sliding_window_view(x, K, axis=2).transpose(1, 3, 0, 2)
    cols2 = cols.reshape(C * K, N * L_out)
    y = (w.reshape(O, C * K) @ cols2 + b[:, None]).reshape(O, N, L_out)  # (O, N, L_out)
    dy2 = np.ascontiguousarray(y).reshape(O, N * L_out)  # any dy of the right shape
    dW = (cols2 @ dy2.T).T.reshape(w.shape)
    db = dy2.sum(axis=1)
    dcols = (w.reshape(O, C * K).T @ dy2).reshape(C, K, N, L_out)
    dx = np.zeros((C, N, L), x.dtype)
    for k in range(K):
        dx[:, :, k : k + L_out] += dcols[:, k]
    return dx.transpose(1, 0, 2), dW, db


def bench_conv1d(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    N, L, C, O = args.batch, args.length, args.dim, 100
    x = rng.standard_normal((N, C, L)).astype(np.float32)
    print(f"Conv1D forward + backward: x ({N}, {C}, {L}) -> {O} maps, float32 (median ms)")
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        torch = None
    for K in (3, 4, 5):
        w = (rng.standard_normal((O, C, K)) * 0.05).astype(np.float32)
        b = np.zeros(O, np.float32)
        ws = ConvWorkspace()

        def cnnlab_step(w: np.ndarray = w, b: np.ndarray = b, ws: ConvWorkspace = ws) -> None:
            y, saved = conv1d_forward_saving(x, w, b, workspace=ws)
            conv1d_backward_saved(y, saved, w)

        steps = {"cnnlab (2-D kernel)": cnnlab_step, "direct 1-D": lambda w=w, b=b: conv1d_direct(x, w, b)}
        if torch is not None:
            xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
            bt = torch.tensor(b, requires_grad=True)

            def torch_step(xt: Any = xt, wt: Any = wt, bt: Any = bt) -> None:
                y = torch.nn.functional.conv1d(xt, wt, bt)
                y.backward(y.detach())

            steps["torch"] = torch_step
        times = time_interleaved(steps, rounds=args.rounds, per_round=2, warmup=1)
        print(f"  K={K}  " + "  ".join(f"{k} {v * 1e3:6.1f}" for k, v in times.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-conv", action="store_true")
    args = parser.parse_args(argv)
    bench_embedding(args)
    if not args.skip_conv:
        bench_conv1d(args)


if __name__ == "__main__":
    main()
