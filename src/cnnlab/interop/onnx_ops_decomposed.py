"""ONNX import: layers that torch.export writes decomposed into several ONNX nodes.

- ``Split`` along the channels (ShuffleNetV2's ``x.chunk(2, dim=1)``): one ``ChannelSlice``
  per output that is read.
- An adaptive average pool whose windows all have the same length (AlexNet's 6x6 and VGG's
  7x7 pools on inputs smaller than 224x224: a 1x1 map repeated). torch's decomposition of
  ``adaptive_avg_pool2d`` indexes the map with the windows' cells and averages them:

      Transpose (2, 3, 0, 1)          (N, C, H, W) -> (H, W, N, C)
      GatherND (OH, KH, OW, KW, 2)    -> (OH, KH, OW, KW, N, C): cell (h, w) of each window
      Transpose (4, 5, 0, 1, 2, 3)    -> (N, C, OH, KH, OW, KW)
      ReduceMean over KH and KW       -> (N, C, OH, OW)

  The four nodes become one ``AdaptiveAvgPool2D`` when the gathered cells are exactly its
  windows (``cnnlab.functional.adaptive_pool.adaptive_windows``); anything else is refused.
  Windows of different lengths are written with masks and an unrolled sum, which cnnlab
  refuses; where the sizes divide, torch writes an ``AveragePool`` (``onnx_ops``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional.adaptive_pool import adaptive_windows
from cnnlab.interop import onnx_ops_shape as shape_ops
from cnnlab.interop.onnx_ops import global_reduce
from cnnlab.interop.onnx_plan import Context, Plan, Unsupported, static_sizes
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.channel_slice import ChannelSlice


def split(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    """``Split`` of (N, C, ...) along axis 1: a ``ChannelSlice`` for each output (sizes as inferred)."""
    x = ctx.dynamic(node)
    rank = ctx.rank(x)
    axis = int(attrs.get("axis", 0))
    if rank is None or axis % rank != 1:
        raise Unsupported(f"axis={axis} of a {rank}-D input (cnnlab splits the channels: axis 1)")
    sizes = [(ctx.shape(out) or (None, None))[1] for out in node.output]
    if any(size is None for size in sizes):
        raise Unsupported("the sizes of its outputs are not known (cnnlab needs static channel counts)")
    plans, start = [], 0
    for i, (out, size) in enumerate(zip(node.output, sizes, strict=True)):
        assert size is not None
        name = f"{node.name or 'Split'}_{i}"
        plans.append(Plan(name, ChannelSlice, {"start": start, "stop": start + size}, {}, [x], out))
        start += size
    for plan in plans[1:]:  # the first is returned (onnx_import records it under output 0)
        plan.tensor, plan.consumers = plan.output, len(ctx.consumers.get(plan.output, []))
        ctx.plans[plan.output] = plan
        if x in ctx.squeezed:  # as onnx_import does for the first: (N, C) in cnnlab stays (N, C)
            ctx.squeezed.add(plan.output)
    return plans[0]


def transpose(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    """The first node of a decomposed adaptive average pool (passed through), or any Transpose."""
    if list(attrs.get("perm", [])) == [2, 3, 0, 1] and node.output[0] not in ctx.skip:
        x = ctx.dynamic(node)
        nodes = _adaptive_pool_nodes(ctx, node, x)
        if nodes is not None:
            for later in nodes:  # GatherND, Transpose, ReduceMean: the ReduceMean plans the pool
                ctx.skip[later.output[0]] = x
            return x
    return shape_ops.transpose(ctx, node, attrs)


def gather_nd(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    if node.output[0] in ctx.skip:
        return ctx.skip[node.output[0]]
    raise Unsupported(
        "cnnlab reads GatherND only as part of torch's adaptive average pool "
        "(Transpose (2, 3, 0, 1), GatherND, Transpose (4, 5, 0, 1, 2, 3), ReduceMean)"
    )


def reduce_mean(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    """The last node of a decomposed adaptive average pool, or a global average pool."""
    if node.output[0] not in ctx.skip:
        return global_reduce(ctx, node, attrs)
    sizes = static_sizes(ctx.shape(node.output[0]), 2)
    if sizes is None:
        raise Unsupported("the adaptive pool's output size is not known")
    return Plan(node.name, AdaptiveAvgPool2D, {"output_size": tuple(sizes)}, {}, [ctx.dynamic(node)])


def _adaptive_pool_nodes(ctx: Context, first: Any, x: str) -> list[Any] | None:
    """[GatherND, Transpose, ReduceMean] after ``first`` if the four nodes are an adaptive pool."""
    hw = static_sizes(ctx.shape(x), 2)
    chain, tensor = [], first.output[0]
    for op in ("GatherND", "Transpose", "ReduceMean"):
        readers = ctx.consumers.get(tensor, [])
        if len(readers) != 1 or readers[0].op_type != op or readers[0].input[0] != tensor:
            return None
        chain.append(readers[0])
        tensor = readers[0].output[0]
    gather, back, mean = chain
    indices = ctx.consts.get(gather.input[1])
    attrs = {a.name: a for a in [*gather.attribute, *back.attribute, *mean.attribute]}
    axes = ctx.consts.get(mean.input[1]) if len(mean.input) > 1 else None
    if axes is None and "axes" in attrs:
        axes = np.array(attrs["axes"].ints)
    if (
        hw is None
        or indices is None
        or indices.ndim != 5
        or indices.shape[4] != 2
        or ("batch_dims" in attrs and attrs["batch_dims"].i != 0)
        or list(attrs["perm"].ints) != [4, 5, 0, 1, 2, 3]
        or axes is None
        or sorted(int(a) % 6 for a in axes) != [3, 5]
        or ("keepdims" not in attrs or attrs["keepdims"].i != 0)
    ):
        return None
    OH, KH, OW, KW, _ = indices.shape
    rows, cols = _window_cells(hw[0], OH, KH), _window_cells(hw[1], OW, KW)  # (OH, KH), (OW, KW)
    if rows is None or cols is None:
        return None
    expected = np.stack(np.broadcast_arrays(rows[:, :, None, None], cols[None, None]), axis=-1)
    return chain if np.array_equal(indices, expected) else None  # (OH, KH, OW, KW, 2)


def _window_cells(size: int, out: int, length: int) -> np.ndarray | None:
    """(out, length): the cells of each adaptive window, or None if a window has another length."""
    windows = adaptive_windows(size, out)
    if any(end - start != length for start, end in windows):
        return None
    return np.array([[start + k for k in range(length)] for start, _ in windows])
