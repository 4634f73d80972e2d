"""What the Graph executor costs: a ResNet as ``Sequential``/``Residual`` and the same net as a ``Graph``.

``as_graph`` rewrites a ``Sequential`` of layers and ``Residual`` blocks into a ``Graph``
with the same layers (copies): each block becomes a node, its shortcut another, and an
``Add`` node joins them (the block's input fans out to the block and the skip path). Both
nets compute the same numbers (the adds are the same sums; checked below), so the time
difference is the executor's bookkeeping: the dict of live tensors, freeing each after its
last reader, and summing fan-out gradients. Neither net is fused (``cnnlab.layers.fuse``
rebuilds only Sequential/Residual containers); the fused Sequential is shown for scale.

Run:

    python benchmarks/bench_graph.py
    python benchmarks/bench_graph.py --batch 64 --depth 9 --size 32
"""

from __future__ import annotations

import argparse
import copy

import numpy as np

from cnnlab.cli.benchmark import time_interleaved
from cnnlab.layers.fuse import fuse
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.models.zoo import resnet


def as_graph(model: Sequential) -> Graph:
    """The same network as a Graph: one node per layer, Residual blocks as block + skip + Add."""
    model = copy.deepcopy(model)
    g = Graph("x")
    last = "x"
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Residual):
            block = g.add(f"block{i}", layer.block, last)
            skip = last if layer.shortcut is None else g.add(f"shortcut{i}", layer.shortcut, last)
            last = g.add(f"add{i}", Add(), [block, skip])  # block + skip, as Residual adds
        else:
            last = g.add(f"n{i}", layer, last)
    g.output(last)
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--depth", type=int, default=6, help="residual blocks")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    seq = resnet(in_channels=3, input_size=args.size, depth=args.depth, rng=0)
    graph = as_graph(seq)
    fused = fuse(copy.deepcopy(seq))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    dy = rng.standard_normal(seq.output_shape(x.shape)).astype(np.float32)

    y_seq, y_graph = seq.forward(x), graph.forward(x)
    dx_seq, dx_graph = seq.backward(dy), graph.backward(dy)
    same = np.array_equal(y_seq, y_graph) and np.array_equal(dx_seq, dx_graph)
    grads = {p.path: p.grad for p in graph.parameters()}
    same_grads = all(np.array_equal(p.grad, grads[_graph_path(p.path)]) for p in seq.parameters())

    def step(net):
        def run() -> None:
            net.forward(x)
            net.backward(dy)

        return run

    times = time_interleaved(
        {"Sequential": step(seq), "Graph": step(graph), "fused Sequential": step(fused)},
        rounds=args.rounds,
        per_round=2,
    )
    print(
        f"resnet depth {args.depth}, batch {args.batch}, {args.size}x{args.size}, float32, forward + backward"
    )
    print(f"{'net':<18} {'ms/step':>8} {'vs Sequential':>14}")
    for name, seconds in times.items():
        print(f"{name:<18} {seconds * 1e3:>8.1f} {seconds / times['Sequential']:>14.3f}")
    print(f"Graph == Sequential bit for bit: output and dL/dx {same}, every weight gradient {same_grads}")


def _graph_path(path: str) -> str:
    """A Sequential key ("3.block.0.weight") as the Graph's ("block3.0.weight")."""
    index, _, rest = path.partition(".")
    for part in ("block", "shortcut"):
        if rest.startswith(part + "."):
            return f"{part}{index}.{rest.removeprefix(part + '.')}"
    return f"n{index}.{rest}"


if __name__ == "__main__":
    main()
