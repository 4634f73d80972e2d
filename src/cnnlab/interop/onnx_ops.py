"""ONNX import: the converters of the layers with weights and of the pools.

``Conv`` (1-D and 2-D, groups, pads, strides, dilations, ``auto_pad``), ``Gemm`` (``transB``,
``alpha``, ``beta``), ``MatMul`` by a constant, ``BatchNormalization`` (inference),
``MaxPool``/``AveragePool`` (pads, ``ceil_mode``, ``count_include_pad``),
``GlobalAveragePool`` and ``ReduceMean`` over H and W. A zero ``Pad`` before a Conv or an
AveragePool is folded into its padding. 2-D pools take ONNX's four pads as they are (Caffe's
asymmetric pads in AlexNet and Inception); a 1-D pool's extra end pad becomes ``ceil_mode``
where the windows are the same. Each returns a ``Plan`` or raises ``Unsupported``
(``cnnlab.interop.onnx_plan``).

Opset differences handled here: BatchNormalization's ``spatial`` (before 9), ``is_test``
(before 7, ignored), ``training_mode`` (14+); AveragePool's ``count_include_pad`` (7+, default
0) and ``ceil_mode`` (10+); ReduceMean's ``axes`` as input (18+).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.functional.pool import pool_output_size
from cnnlab.interop.onnx_plan import (
    Context,
    Plan,
    Shape,
    Unsupported,
    only_first_output,
    pair_or_int,
    refuse_attrs,
    static_sizes,
    takes,
    unpadded,
)
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.pooling1d import AvgPool1D, GlobalMaxPool1D, MaxPool1D
from cnnlab.utils import same_padding


# ---- spatial geometry: pads, auto_pad, folded Pad --------------------------------------------
def _pads(ctx: Context, node: Any, attrs: dict[str, Any], x: str, k: list[int], s: list[int], d: list[int]):
    """(begin pads, end pads) of a Conv/pool, with a folded Pad added; or "same" (SAME_UPPER)."""
    n = len(k)
    auto = attrs.get("auto_pad", "NOTSET")
    spatial = static_sizes(ctx.shape(x), n)
    if auto == "VALID":
        begin, end = [0] * n, [0] * n
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        if auto == "SAME_UPPER" and x not in ctx.pads:
            return "same"
        if spatial is None:
            raise Unsupported(f"auto_pad={auto} needs the input's size, which is not static")
        split = [same_padding(v, ki, si, di) for v, ki, si, di in zip(spatial, k, s, d, strict=True)]
        small, large = [p[0] for p in split], [p[1] for p in split]
        begin, end = (large, small) if auto == "SAME_LOWER" else (small, large)
    else:
        pads = list(attrs.get("pads", [0] * 2 * n))
        begin, end = pads[:n], pads[n:]
    if x in ctx.pads:  # a zero Pad before this node: add its spatial pads
        _, extra, _ = ctx.pads[x]
        begin = [b + e for b, e in zip(begin, extra[2 : 2 + n], strict=True)]
        end = [b + e for b, e in zip(end, extra[4 + n :], strict=True)]
    return begin, end


# ---- Conv ---------------------------------------------------------------------------------------
def conv(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    W = ctx.const(node, 1, "weight")
    B = ctx.const(node, 2, "bias")
    x = ctx.dynamic(node)
    assert W is not None
    n = W.ndim - 2
    if n not in (1, 2):
        raise Unsupported(f"{n}-D convolution (cnnlab has Conv1D and Conv2D)")
    k = list(attrs.get("kernel_shape", W.shape[2:]))
    s = list(attrs.get("strides", [1] * n))
    d = list(attrs.get("dilations", [1] * n))
    group = int(attrs.get("group", 1))
    cls: type[Layer] = Conv1D if n == 1 else Conv2D
    if group != 1 and not takes(cls, "groups"):
        raise Unsupported(f"group={group} (cnnlab's {cls.__name__} has no groups yet)")
    if x in ctx.squeezed:  # a 1x1 conv of (N, C, 1, 1): a Dense of cnnlab's (N, C) (densenet121)
        if any(v != 1 for v in (*W.shape[2:], group)) or any(attrs.get("pads", [])):
            raise Unsupported("it reads GlobalAveragePool's output, (N, C) in cnnlab, with a kernel over 1x1")
        ctx.squeezed.add(node.output[0])
        return _dense(ctx, node, x, W.reshape(W.shape[0], -1), B)
    pads = _pads(ctx, node, attrs, x, k, s, d)
    if pads == "same":
        padding: Any = "same"
    else:
        begin, end = pads
        if begin != end:  # asymmetric: fine where it is the "same" split at this static size
            spatial = static_sizes(ctx.shape(x), n)
            split = [same_padding(*a) for a in zip(spatial or [], k, s, d, strict=False)]
            if spatial is None or [p[0] for p in split] != begin or [p[1] for p in split] != end:
                raise Unsupported(
                    f"asymmetric Conv pads begin={begin} end={end} (cnnlab pads both sides alike)"
                )
            padding = "same"  # the TF/Keras split (odd one at the end), at this input size
        else:
            padding = pair_or_int(begin)
    C_out, C_in_g = W.shape[:2]
    args: dict[str, Any] = {
        "in_channels": C_in_g * group,
        "out_channels": C_out,
        "kernel_size": pair_or_int(k) if n == 2 else k[0],
        "stride": pair_or_int(s) if n == 2 else s[0],
        "padding": padding,
        "dilation": pair_or_int(d) if n == 2 else d[0],
        "bias": B is not None,
        "rng": 0,
    }
    if group != 1:
        args["groups"] = group
    weights = {"weight": W} | ({"bias": B} if B is not None else {})
    return Plan(node.name, cls, args, weights, [unpadded(ctx, x)])


# ---- Gemm / MatMul: Dense ------------------------------------------------------------------------
def gemm(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    B = ctx.const(node, 1, "weight B")
    C = ctx.const(node, 2, "bias C")
    assert B is not None
    if attrs.get("transA", 0):
        raise Unsupported("transA=1 (the data would be transposed; cnnlab's Dense reads (N, in))")
    weight = B if attrs.get("transB", 0) else B.T  # (out, in)
    if float(attrs.get("alpha", 1.0)) != 1.0:
        weight = weight * float(attrs["alpha"])
    out = weight.shape[0]
    bias = None
    if C is not None:
        if C.size not in (1, out) or (C.ndim == 2 and C.shape[0] != 1):
            raise Unsupported(f"bias C of shape {C.shape} (cnnlab: one bias per output, ({out},))")
        bias = np.broadcast_to(C.reshape(-1), (out,)) * float(attrs.get("beta", 1.0))
    return _dense(ctx, node, x, weight, bias)


def matmul(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    B = ctx.const(node, 1, "second factor")
    assert B is not None
    if B.ndim != 2:
        raise Unsupported(f"a constant of shape {B.shape} (cnnlab: a 2-D weight (in, out))")
    return _dense(ctx, node, x, B.T, None)


def _dense(ctx: Context, node: Any, x: str, weight: np.ndarray, bias: np.ndarray | None) -> Plan:
    rank = ctx.rank(x)
    if rank is not None and rank != 2 and x not in ctx.squeezed:
        raise Unsupported(f"a {rank}-D input (cnnlab's Dense reads (N, in))")
    args = {
        "in_features": weight.shape[1],
        "out_features": weight.shape[0],
        "bias": bias is not None,
        "rng": 0,
    }
    weights = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    return Plan(node.name, Dense, args, weights, [x])


# ---- BatchNormalization ---------------------------------------------------------------------------
def batchnorm(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    scale, bias, mean, var = (
        ctx.const(node, i, w) for i, w in enumerate(("x", "scale", "B", "mean", "var")) if i
    )
    refuse_attrs(attrs, {"spatial": 1, "training_mode": 0})
    only_first_output(node, ctx)
    rank = ctx.rank(x)
    if rank not in (2, 3, 4):
        raise Unsupported(f"a {rank}-D input (cnnlab: BatchNorm1D for 2-D/3-D, BatchNorm2D for 4-D)")
    momentum = 1.0 - float(attrs.get("momentum", 0.9))  # ONNX weighs the old value; cnnlab the new
    assert scale is not None and bias is not None and mean is not None and var is not None
    args = {"num_features": scale.size, "eps": float(attrs.get("epsilon", 1e-5)), "momentum": momentum}
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    return Plan(node.name, BatchNorm2D if rank == 4 else BatchNorm1D, args, weights, [x])


# ---- pooling ---------------------------------------------------------------------------------------
def pool(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    only_first_output(node, ctx)
    k = list(attrs["kernel_shape"])
    n = len(k)
    if n not in (1, 2):
        raise Unsupported(f"{n}-D pooling (cnnlab pools 1-D and 2-D)")
    s = list(attrs.get("strides", [1] * n))
    d = list(attrs.get("dilations", [1] * n))
    refuse_attrs(attrs, {"dilations": [1] * n, "storage_order": 0})
    is_max = node.op_type == "MaxPool"
    if not is_max and x in ctx.pads and ctx.opset >= 7 and not attrs.get("count_include_pad", 0):
        raise Unsupported("a Pad before it while count_include_pad=0 (the padded zeros would not count)")
    pads = _pads(ctx, node, attrs, x, k, s, d)
    if pads == "same":
        raise Unsupported("auto_pad=SAME_UPPER pooling (cnnlab's pools take explicit padding)")
    begin, end = pads
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0)) or (not is_max and x in ctx.pads)
    if n == 2 and begin != end:  # ONNX's four pads (top, left, bottom, right), as MaxPool2D takes them
        if any(p >= ki for p, ki in zip(begin + end, k + k, strict=True)):
            raise Unsupported(f"pads begin={begin} end={end}: each must be smaller than the kernel {k}")
        padding: Any = (*begin, *end)
    else:
        if begin != end:  # 1-D: Caffe's extra end pad as ceil_mode, where the windows are the same
            begin, ceil_mode = _asymmetric_as_ceil(
                ctx.shape(x), k, s, begin, end, ceil_mode, is_max or not include
            )
        if any(p > ki // 2 for p, ki in zip(begin, k, strict=True)):
            raise Unsupported(f"pads {begin} larger than half the kernel {k} (cnnlab follows PyTorch's rule)")
        padding = pair_or_int(begin) if n == 2 else begin[0]
    cls: type[Layer] = (
        (MaxPool2D if is_max else AvgPool2D) if n == 2 else (MaxPool1D if is_max else AvgPool1D)
    )
    args: dict[str, Any] = {"kernel_size": pair_or_int(k), "stride": pair_or_int(s), "padding": padding}
    args["ceil_mode"] = ceil_mode
    if not is_max:
        args["count_include_pad"] = include
    return Plan(node.name, cls, args, {}, [unpadded(ctx, x)])


def _asymmetric_as_ceil(
    shape: Shape | None, k: list[int], s: list[int], begin: list[int], end: list[int], ceil: bool, exact: bool
) -> tuple[list[int], bool]:
    """1-D pools: extra end pads as ``ceil_mode`` (the same windows) where exact; else Unsupported.

    With begin <= end, padding the end with -inf (max) or with uncounted zeros (average,
    count_include_pad=0) gives the windows of ceil_mode at the begin pads when both produce
    the same number of outputs (Caffe's pools, exported as asymmetric pads).
    """
    spatial = static_sizes(shape, len(k))
    ok = exact and not ceil and spatial is not None
    for v, ki, si, b, e in zip(spatial or [], k, s, begin, end, strict=True):
        onnx_out = (v + b + e - ki) // si + 1
        ok = ok and e >= b and onnx_out == pool_output_size(v, ki, si, b, True)
    if not ok:
        raise Unsupported(f"asymmetric pool pads begin={begin} end={end} (cnnlab pads both sides alike)")
    return begin, True


def global_avg_pool(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    if ctx.rank(x) != 4:
        raise Unsupported(f"a {ctx.rank(x)}-D input (cnnlab's GlobalAvgPool2D takes (N, C, H, W))")
    ctx.squeezed.add(node.output[0])
    return Plan(node.name, GlobalAvgPool2D, {}, {}, [x])


def global_reduce(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    """``ReduceMean`` over H and W of (N, C, H, W), ``ReduceMax`` over L of (N, C, L): global pools.

    torch exports cnnlab's GlobalAvgPool2D and GlobalMaxPool1D so; ``axes`` is an input
    since opset 18 and ``keepdims`` (default 1) keeps the pooled axes as size 1.
    """
    x = ctx.dynamic(node)
    rank = ctx.rank(x)
    given = attrs.get("axes") if ctx.opset < 18 else ctx.const(node, 1, "axes")
    axes = sorted(int(a) % rank for a in given) if rank and given is not None else None
    want = {"ReduceMean": (4, [2, 3], GlobalAvgPool2D), "ReduceMax": (3, [2], GlobalMaxPool1D)}
    ndim, over, cls = want[node.op_type]
    if rank != ndim or axes != over:
        shape = "(N, C, H, W)" if ndim == 4 else "(N, C, L)"
        raise Unsupported(f"over axes {axes} of a {rank}-D input (cnnlab: over axes {over} of {shape})")
    if attrs.get("keepdims", 1):
        ctx.squeezed.add(node.output[0])
    return Plan(node.name, cls, {}, {}, [x])
