"""The per-operator converters of ONNX import: one ONNX node -> a plan for one cnnlab layer.

A converter reads the node (its attributes, its constant inputs, the inferred shapes of its
tensors) and returns a ``Plan`` (the layer class, its arguments and weights: nothing is built
yet), or the name of the tensor the node passes on unchanged (``Identity``, ``Dropout``, a
``Reshape`` that changes nothing). What cnnlab cannot express raises ``Unsupported`` with
the reason; ``cnnlab.interop.onnx_import`` collects every reason before it builds anything.

Some nodes are folded into the node before or after them rather than becoming a layer:
``Pad`` (zero padding) into the ``Conv``/``AveragePool`` that reads it; ``Mul``/``Add`` by a
per-channel constant into the ``BatchNormalization``/``Conv``/``Gemm`` that produced their
input (densenet121 and inception_v2 scale and shift after each BatchNormalization); the
``Reshape -> Transpose -> Reshape`` of ShuffleNet into one ``ChannelShuffle``.

Opset differences handled here (opsets 6 to 21): Softmax/LogSoftmax before 13 coerce the
input to 2-D at ``axis`` (default 1; since 13 the axis alone, default -1);
BatchNormalization's ``spatial`` (before 9), ``is_test`` (before 7), ``training_mode``
(14+); Dropout's ``ratio``/``training_mode`` inputs (12+); Pad's pads as input (11+);
Clip's bounds as inputs (11+); Gemm's and Add's legacy ``broadcast``/``axis`` (before 7);
AveragePool's ``count_include_pad`` (7+, default 0) and ``ceil_mode`` (10+).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.functional.pool import pool_output_size
from cnnlab.init import dry_build
from cnnlab.layers.activations import ELU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.base import LAYER_TYPES, Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.pooling1d import AvgPool1D, MaxPool1D
from cnnlab.layers.registry import MAX_PARAMETERS, import_all_layers
from cnnlab.layers.reshape import Flatten
from cnnlab.utils import same_padding

Shape = tuple[int | None, ...]


class Unsupported(Exception):
    """A node (or one of its attributes) that cnnlab cannot express; the message says why."""


@dataclass
class Plan:
    """One cnnlab layer to build: ``cls(**args)`` with ``weights`` (params and buffers) set."""

    node: str  # the ONNX node's name (or its op and output)
    cls: type[Layer]
    args: dict[str, Any]
    weights: dict[str, np.ndarray]
    inputs: list[str]
    output: str = ""
    consumers: int = 1  # how many nodes read the output (folding needs exactly one)
    tensor: str = ""  # the last ONNX tensor the layer's output equals (after what was folded in)

    def build(self, dtype: Any) -> Layer:
        """The layer with the ONNX weights (no random initial weights are drawn first)."""
        with dry_build(limit=MAX_PARAMETERS):  # the initializers hand out zero views
            layer = self.cls(**self.args)
        assert set(layer.params) <= set(self.weights), (self.node, set(layer.params), set(self.weights))
        for key, value in self.weights.items():
            store = layer.params if key in layer.params else layer.buffers
            store[key] = np.array(value, dtype=dtype).reshape(store[key].shape)  # a copy: ours
        return layer


@dataclass
class Context:
    """What the converters read: constants, inferred shapes, the opset and earlier plans."""

    opset: int
    consts: dict[str, np.ndarray]
    shapes: dict[str, Shape]
    consumers: dict[str, list[Any]]  # tensor -> the nodes that read it
    alias: dict[str, str] = field(default_factory=dict)  # tensor -> the tensor it equals
    plans: dict[str, Plan] = field(default_factory=dict)  # output tensor -> its plan
    pads: dict[str, tuple[str, list[int], str]] = field(default_factory=dict)  # Pad output
    squeezed: set[str] = field(default_factory=set)  # (N, C) in cnnlab, (N, C, 1, 1) in ONNX
    skip: dict[str, str] = field(default_factory=dict)  # node output -> tensor (a folded pattern)

    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def const(self, node: Any, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` of ``node`` as a constant (None when absent); Unsupported if computed."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.consts:
            raise Unsupported(f"its {what} (input {index}) is computed in the graph, not a constant")
        return self.consts[name]

    def dynamic(self, node: Any, index: int = 0) -> str:
        """Input ``index`` as a tensor that depends on the model's input (resolved)."""
        name = node.input[index]
        if name in self.consts:
            raise Unsupported(f"input {index} is a constant (only the model's data flows through layers)")
        name = self.resolve(name)
        if name in self.pads and node.op_type not in ("Conv", "AveragePool"):
            raise Unsupported(
                f"it reads the output of Pad {self.pads[name][2]!r}: zero padding is folded only "
                "into a following Conv or AveragePool"
            )
        return name

    def shape(self, name: str) -> Shape | None:
        return self.shapes.get(name)

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


Converter = Callable[[Context, Any, dict[str, Any]], "Plan | str"]


def takes(cls: type[Layer], arg: str) -> bool:
    """Whether ``cls.__init__`` has argument ``arg`` (grouped Conv2D, pools with more options)."""
    return arg in inspect.signature(cls.__init__).parameters


def layer_type(name: str) -> type[Layer] | None:
    """A layer class other modules may add (ChannelShuffle, PReLU ...), or None."""
    return import_all_layers().get(name) or LAYER_TYPES.get(name)


def _refuse_attrs(attrs: dict[str, Any], allowed: dict[str, Any]) -> None:
    """Unsupported for an attribute whose value differs from the one cnnlab has."""
    bad = [f"{k}={attrs[k]!r} (cnnlab: {v!r})" for k, v in allowed.items() if k in attrs and attrs[k] != v]
    if bad:
        raise Unsupported("attribute " + ", ".join(bad))


def _only_first_output(node: Any, ctx: Context) -> None:
    for extra in node.output[1:]:
        if extra and ctx.consumers.get(extra):
            raise Unsupported(f"its output {extra!r} (beyond the first) is used")


def _pair_or_int(values: list[int]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else tuple(values)


# ---- spatial geometry: pads, auto_pad, folded Pad --------------------------------------------
def _pads(ctx: Context, node: Any, attrs: dict[str, Any], x: str, k: list[int], s: list[int], d: list[int]):
    """(begin pads, end pads) of a Conv/pool, with a folded Pad added; or "same" (SAME_UPPER)."""
    n = len(k)
    auto = attrs.get("auto_pad", "NOTSET")
    spatial = _static(ctx.shape(x), n)
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
            spatial = _static(ctx.shape(x), n)
            split = [same_padding(*a) for a in zip(spatial or [], k, s, d, strict=False)]
            if spatial is None or [p[0] for p in split] != begin or [p[1] for p in split] != end:
                raise Unsupported(
                    f"asymmetric Conv pads begin={begin} end={end} (cnnlab pads both sides alike)"
                )
            padding = "same"  # the TF/Keras split (odd one at the end), at this input size
        else:
            padding = _pair_or_int(begin)
    C_out, C_in_g = W.shape[:2]
    args: dict[str, Any] = {
        "in_channels": C_in_g * group,
        "out_channels": C_out,
        "kernel_size": _pair_or_int(k) if n == 2 else k[0],
        "stride": _pair_or_int(s) if n == 2 else s[0],
        "padding": padding,
        "dilation": _pair_or_int(d) if n == 2 else d[0],
        "bias": B is not None,
        "rng": 0,
    }
    if group != 1:
        args["groups"] = group
    weights = {"weight": W} | ({"bias": B} if B is not None else {})
    return Plan(node.name, cls, args, weights, [_unpadded(ctx, x)])


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
    _refuse_attrs(attrs, {"spatial": 1, "training_mode": 0})
    _only_first_output(node, ctx)
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
    _only_first_output(node, ctx)
    k = list(attrs["kernel_shape"])
    n = len(k)
    if n not in (1, 2):
        raise Unsupported(f"{n}-D pooling (cnnlab pools 1-D and 2-D)")
    s = list(attrs.get("strides", [1] * n))
    d = list(attrs.get("dilations", [1] * n))
    _refuse_attrs(attrs, {"dilations": [1] * n, "storage_order": 0})
    is_max = node.op_type == "MaxPool"
    if not is_max and x in ctx.pads and ctx.opset >= 7 and not attrs.get("count_include_pad", 0):
        raise Unsupported("a Pad before it while count_include_pad=0 (the padded zeros would not count)")
    pads = _pads(ctx, node, attrs, x, k, s, d)
    if pads == "same":
        raise Unsupported("auto_pad=SAME_UPPER pooling (cnnlab's pools take explicit padding)")
    begin, end = pads
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    include = bool(attrs.get("count_include_pad", 0)) or (not is_max and x in ctx.pads)
    if not is_max and not include and n == 2 and _one_window(ctx.shape(x), k, s, begin, end):
        ctx.squeezed.add(node.output[0])  # one window over the whole map: the global average
        return Plan(node.name, GlobalAvgPool2D, {}, {}, [_unpadded(ctx, x)])
    if begin != end:
        begin, ceil_mode = _asymmetric_as_ceil(
            ctx.shape(x), k, s, begin, end, ceil_mode, is_max or not include
        )
    if any(p > ki // 2 for p, ki in zip(begin, k, strict=True)):
        raise Unsupported(f"pads {begin} larger than half the kernel {k} (cnnlab follows PyTorch's rule)")
    if n == 1:
        cls: type[Layer] = MaxPool1D if is_max else AvgPool1D
        args: dict[str, Any] = {
            "kernel_size": k[0],
            "stride": s[0],
            "padding": begin[0],
            "ceil_mode": ceil_mode,
        }
    else:
        cls = MaxPool2D if is_max else AvgPool2D
        args = {"kernel_size": _pair_or_int(k), "stride": _pair_or_int(s), "padding": _pair_or_int(begin)}
        args["ceil_mode"] = ceil_mode
    if not is_max:
        args["count_include_pad"] = include
    return Plan(node.name, cls, args, {}, [_unpadded(ctx, x)])


def _unpadded(ctx: Context, x: str) -> str:
    """The tensor a folded Pad read (the layer pads it itself), or ``x``."""
    return ctx.pads[x][0] if x in ctx.pads else x


def _static(shape: Shape | None, n: int) -> list[int] | None:
    """The ``n`` spatial sizes of an (N, C, ...) shape when the file fixes them all, else None."""
    spatial = (shape or ())[2:]
    if len(spatial) != n or any(v is None for v in spatial):
        return None
    return [int(v) for v in spatial if v is not None]


def _one_window(shape: Shape | None, k: list[int], s: list[int], begin: list[int], end: list[int]) -> bool:
    """Whether the pool has one output per axis whose window covers the whole (static) input."""
    spatial = _static(shape, len(k))
    return spatial is not None and all(
        0 <= v + b + e - ki < si and ki - b >= v  # one window, and it reaches the last row
        for v, ki, si, b, e in zip(spatial, k, s, begin, end, strict=True)
    )


def _asymmetric_as_ceil(
    shape: Shape | None, k: list[int], s: list[int], begin: list[int], end: list[int], ceil: bool, exact: bool
) -> tuple[list[int], bool]:
    """Extra end pads as ``ceil_mode`` (the same windows) where that is exact; else Unsupported.

    With begin <= end, padding the end with -inf (max) or with uncounted zeros (average,
    count_include_pad=0) gives the windows of ceil_mode at the begin pads when both produce
    the same number of outputs (Caffe's pools, exported as asymmetric pads).
    """
    spatial = _static(shape, len(k))
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


def reduce_mean(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    """``ReduceMean`` over H and W of (N, C, H, W): a global average pool (how torch exports it)."""
    x = ctx.dynamic(node)
    rank = ctx.rank(x)
    given = attrs.get("axes") if ctx.opset < 18 else ctx.const(node, 1, "axes")
    axes = sorted(int(a) % rank for a in given) if rank and given is not None else None
    if rank != 4 or axes != [2, 3]:
        raise Unsupported(
            f"a mean over axes {axes} of a {rank}-D input (cnnlab: over H and W of (N, C, H, W))"
        )
    if attrs.get("keepdims", 1):
        ctx.squeezed.add(node.output[0])
    return Plan(node.name, GlobalAvgPool2D, {}, {}, [x])


# ---- activations -------------------------------------------------------------------------------------
def _simple(cls: type[Layer], **fixed: Any) -> Converter:
    def convert(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
        return Plan(node.name, cls, dict(fixed), {}, [ctx.dynamic(node)])

    return convert


def leaky_relu(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    # ONNX's default slope is 0.01 (PyTorch's); cnnlab's default is 0.1, so it is always passed.
    return Plan(
        node.name, LeakyReLU, {"negative_slope": float(attrs.get("alpha", 0.01))}, {}, [ctx.dynamic(node)]
    )


def elu(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    return Plan(node.name, ELU, {"alpha": float(attrs.get("alpha", 1.0))}, {}, [ctx.dynamic(node)])


def clip(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    if ctx.opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = ctx.const(node, 1, "min"), ctx.const(node, 2, "max")
        low, high = (None if v is None else float(v) for v in (lo, hi))
    if low == 0 and high is None:
        return Plan(node.name, ReLU, {}, {}, [x])
    relu6 = layer_type("ReLU6")
    if low == 0 and high == 6 and relu6 is not None:
        return Plan(node.name, relu6, {}, {}, [x])
    raise Unsupported(f"Clip to [{low}, {high}] (cnnlab: [0, inf) as ReLU, [0, 6] as ReLU6)")


def softmax(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    shape = ctx.shape(x)
    if shape is None:
        raise Unsupported("the input's rank is unknown")
    rank = len(shape)
    axis = int(attrs.get("axis", 1 if ctx.opset < 13 else -1)) % rank
    if ctx.opset < 13 and axis < rank - 1 and any(v != 1 for v in shape[axis + 1 :]):
        # before opset 13 the input is coerced to 2-D: (prod(shape[:axis]), prod(shape[axis:]))
        raise Unsupported(
            f"softmax over the axes {axis}..{rank - 1} of a {rank}-D input (the opset<13 coercion)"
        )
    if node.op_type == "Softmax":
        if axis != 1:
            raise Unsupported(f"axis={axis} of a {rank}-D input (cnnlab's Softmax is over axis 1)")
        return Plan(node.name, Softmax, {}, {}, [x])
    log_softmax = layer_type("LogSoftmax")
    if log_softmax is None:
        raise Unsupported("cnnlab has no LogSoftmax layer yet")
    if x in ctx.squeezed and axis != 1:
        raise Unsupported("axis over GlobalAveragePool's (N, C) output")
    return Plan(node.name, log_softmax, {"axis": axis}, {}, [x])


def lrn(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    size = int(attrs["size"])
    if size % 2 == 0:
        raise Unsupported(f"size={size}: for even sizes ONNX's window differs from cnnlab's (PyTorch's)")
    args = {
        "size": size,
        "alpha": float(attrs.get("alpha", 1e-4)),
        "beta": float(attrs.get("beta", 0.75)),
        "k": float(attrs.get("bias", 1.0)),
    }
    return Plan(node.name, LocalResponseNorm, args, {}, [ctx.dynamic(node)])


# ---- joins and elementwise with constants --------------------------------------------------------------
def concat(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    xs = [ctx.dynamic(node, i) for i in range(len(node.input))]
    rank = ctx.rank(xs[0])
    axis = int(attrs.get("axis", 1))
    axis = axis % rank if rank else axis
    if any(x in ctx.squeezed for x in xs) and axis != 1:
        raise Unsupported("it joins GlobalAveragePool outputs ((N, C) in cnnlab) along an axis other than 1")
    return Plan(node.name, Concat, {"axis": axis}, {}, xs)


def add_or_sum(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan | str:
    consts = [i for i, name in enumerate(node.input) if name in ctx.consts]
    if node.op_type == "Add" and len(consts) == 1 and len(node.input) == 2:
        return _fold_affine(ctx, node, attrs, shift=ctx.consts[node.input[consts[0]]])
    xs = [ctx.dynamic(node, i) for i in range(len(node.input))]
    if len(xs) == 1:
        return xs[0]
    shapes = [ctx.shape(x) for x in xs]
    if all(s is not None for s in shapes) and len({s for s in shapes}) > 1:
        raise Unsupported(f"inputs of shapes {shapes} (cnnlab's Add does not broadcast)")
    return Plan(node.name, Add, {}, {}, xs)


def mul(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan | str:
    consts = [i for i, name in enumerate(node.input) if name in ctx.consts]
    if len(consts) != 1:
        raise Unsupported("a product of two computed tensors (cnnlab folds only a constant factor)")
    return _fold_affine(ctx, node, attrs, scale=ctx.consts[node.input[consts[0]]])


def _fold_affine(
    ctx: Context,
    node: Any,
    attrs: dict[str, Any],
    scale: np.ndarray | None = None,
    shift: np.ndarray | None = None,
) -> str:
    """Fold ``x * scale`` or ``x + shift`` (a scalar or one value per channel) into x's producer."""
    x = ctx.dynamic(node, 0 if node.input[0] not in ctx.consts else 1)
    plan = ctx.plans.get(x)
    value = scale if scale is not None else shift
    assert value is not None
    per_channel = _per_channel(value, ctx.shape(x), ctx.opset, attrs)
    if (
        plan is None
        or plan.cls not in (BatchNorm1D, BatchNorm2D, Conv2D, Conv1D, Dense)
        or plan.consumers != 1
    ):
        raise Unsupported(
            "a constant is folded only into a BatchNormalization, Conv or Gemm/MatMul whose output "
            "nothing else reads"
        )
    if per_channel is None:
        raise Unsupported(
            f"a constant of shape {value.shape} (cnnlab folds a scalar or one value per channel)"
        )
    out = plan.weights["weight"].shape[0]
    v = np.broadcast_to(per_channel, (out,)).astype(np.float64)
    bias_key = "bias"
    if plan.cls not in (BatchNorm1D, BatchNorm2D) and "bias" not in plan.weights:
        plan.weights["bias"] = np.zeros(out)
        plan.args["bias"] = True
    if scale is not None:  # (W x + b) * s = (s W) x + s b;  BN: (gamma x^ + beta) * s
        w = plan.weights["weight"]
        plan.weights["weight"] = w * v.reshape((out,) + (1,) * (w.ndim - 1))
        plan.weights[bias_key] = plan.weights[bias_key] * v
    else:
        plan.weights[bias_key] = plan.weights[bias_key] + v
    ctx.plans[node.output[0]] = plan
    plan.consumers = len(ctx.consumers.get(node.output[0], []))
    plan.tensor = node.output[0]
    return x


def _per_channel(
    value: np.ndarray, shape: Shape | None, opset: int, attrs: dict[str, Any]
) -> np.ndarray | None:
    """``value`` as a scalar or (C,) vector if it broadcasts along the channel axis only."""
    if value.size == 1:
        return value.reshape(())
    if shape is None:
        return None
    rank = len(shape)
    if opset < 7 and attrs.get("broadcast"):  # legacy: value's axes start at `axis`
        axis = int(attrs.get("axis", rank - value.ndim))
        full = (1,) * axis + value.shape + (1,) * (rank - axis - value.ndim)
    else:
        full = (1,) * (rank - value.ndim) + value.shape
    if len(full) != rank or any(v != 1 for i, v in enumerate(full) if i != 1):
        return None
    return value.reshape(-1)


# ---- shape ops ---------------------------------------------------------------------------------------------
def flatten(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    if int(attrs.get("axis", 1)) != 1:
        raise Unsupported(f"axis={attrs.get('axis')} (cnnlab's Flatten keeps axis 0: axis=1)")
    x = ctx.dynamic(node)
    return Plan(node.name, Flatten, {}, {}, [x])


def reshape(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan | str:
    x = ctx.dynamic(node)
    target = ctx.const(node, 1, "shape")
    if node.output[0] in ctx.skip:
        return ctx.skip[node.output[0]]
    shuffle = channel_shuffle(ctx, node, x)
    if shuffle is not None:
        return shuffle
    shape = ctx.shape(x)
    assert target is not None
    t = [int(v) for v in target]
    if shape is None or len(t) != 2:
        raise Unsupported(f"reshape to {t} (cnnlab turns only a flatten to (N, -1) into Flatten)")
    rest = [v for v in shape[1:]]
    size = math.prod(v for v in rest) if all(v is not None for v in rest) else None  # type: ignore[misc]
    batch_ok = t[0] in (0, -1, shape[0]) or (t[0] == 1 and shape[0] == 1)
    if batch_ok and (t[1] == -1 or (size is not None and t[1] == size)) and not (t[0] == -1 and t[1] == -1):
        if len(shape) == 2 or x in ctx.squeezed:
            return x
        return Plan(node.name, Flatten, {}, {}, [x])
    raise Unsupported(
        f"reshape of {tuple(shape)} to {t} (cnnlab turns only a flatten to (N, -1) into Flatten)"
    )


def channel_shuffle(ctx: Context, node: Any, x: str) -> Plan | None:
    """``Reshape (N, g, C/g, H, W) -> Transpose (0, 2, 1, 3, 4) -> Reshape (N, C, H, W)``, or None."""
    shape, out = ctx.shape(x), ctx.shape(node.output[0])
    readers = ctx.consumers.get(node.output[0], [])
    if shape is None or out is None or len(shape) != 4 or len(out) != 5 or len(readers) != 1:
        return None
    tr = readers[0]
    perm = [a.ints for a in tr.attribute if a.name == "perm"]
    after = ctx.consumers.get(tr.output[0], [])
    if tr.op_type != "Transpose" or not perm or list(perm[0]) != [0, 2, 1, 3, 4] or len(after) != 1:
        return None
    back = after[0]
    if back.op_type != "Reshape" or ctx.shape(back.output[0]) != shape or out[1] is None:
        return None
    cls = layer_type("ChannelShuffle")
    if cls is None:
        raise Unsupported("a channel shuffle (Reshape, Transpose, Reshape): cnnlab has no ChannelShuffle yet")
    ctx.skip[tr.output[0]] = node.output[0]
    ctx.skip[back.output[0]] = node.output[0]
    return Plan(node.name, cls, {"groups": int(out[1])}, {}, [x], tensor=back.output[0])


def transpose(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    x = ctx.dynamic(node)
    if node.output[0] in ctx.skip:
        return ctx.skip[node.output[0]]
    perm = list(attrs.get("perm", []))
    if perm and perm == sorted(perm):
        return x
    raise Unsupported(
        f"perm={perm} (cnnlab imports only a Transpose that changes nothing, or a channel shuffle)"
    )


def identity(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    return ctx.dynamic(node)


def dropout(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    _only_first_output(node, ctx)
    if ctx.opset >= 12:
        training = ctx.const(node, 2, "training_mode")
        if training is not None and bool(training):
            raise Unsupported("training_mode=True (an imported model runs Dropout as the identity)")
    return ctx.dynamic(node)  # inference: the identity (ratio is only used in training)


def pad(ctx: Context, node: Any, attrs: dict[str, Any]) -> str:
    x = ctx.dynamic(node)
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads, value = list(attrs.get("pads", [])), float(attrs.get("value", 0.0))
    else:
        p, v = ctx.const(node, 1, "pads"), ctx.const(node, 2, "constant_value")
        if ctx.const(node, 3, "axes") is not None:
            raise Unsupported("the axes input (cnnlab folds pads given for every axis)")
        pads, value = (
            [int(i) for i in (p if p is not None else [])],
            float(v) if v is not None and v.size else 0.0,
        )
    if mode != "constant" or value != 0.0:
        raise Unsupported(f"mode={mode!r} value={value} (cnnlab folds only zero padding into a Conv or pool)")
    r = len(pads) // 2
    if r < 3 or any(v < 0 for v in pads) or pads[0] or pads[1] or pads[r] or pads[r + 1]:
        raise Unsupported(f"pads={pads} (cnnlab folds non-negative pads of the spatial axes only)")
    readers = ctx.consumers.get(node.output[0], [])
    if not readers or any(r.op_type not in ("Conv", "AveragePool") for r in readers):
        kinds = sorted({r.op_type for r in readers}) or ["the model's output"]
        raise Unsupported(f"zero padding read by {', '.join(kinds)} (folded only into a Conv or AveragePool)")
    ctx.pads[node.output[0]] = (x, pads, node.name or node.output[0])
    return node.output[0]


#: ONNX operator -> converter. Everything else is refused by name.
CONVERTERS: dict[str, Converter] = {
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batchnorm,
    "MaxPool": pool,
    "AveragePool": pool,
    "GlobalAveragePool": global_avg_pool,
    "ReduceMean": reduce_mean,
    "Relu": _simple(ReLU),
    "LeakyRelu": leaky_relu,
    "Sigmoid": _simple(Sigmoid),
    "Tanh": _simple(Tanh),
    "Elu": elu,
    "Clip": clip,
    "Softmax": softmax,
    "LogSoftmax": softmax,
    "LRN": lrn,
    "Concat": concat,
    "Add": add_or_sum,
    "Sum": add_or_sum,
    "Mul": mul,
    "Flatten": flatten,
    "Reshape": reshape,
    "Transpose": transpose,
    "Identity": identity,
    "Dropout": dropout,
    "Pad": pad,
}


def hardswish(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    cls = layer_type("Hardswish")
    if cls is None:
        raise Unsupported("cnnlab has no Hardswish layer yet")
    return Plan(node.name, cls, {}, {}, [ctx.dynamic(node)])


CONVERTERS["HardSwish"] = hardswish
