"""ONNX import: the converters of activations, joins and the ops that move or fold data.

Activations (``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``Elu``, ``Clip`` as ReLU/ReLU6,
``HardSwish``), ``Softmax``/``LogSoftmax``, ``LRN``, ``Concat``, ``Sum``/``Add``; ``Mul``/``Add``
by a per-channel constant folded into the ``BatchNormalization``/``Conv``/``Gemm`` that
produced their input (densenet121 and inception_v2 scale and shift after each
BatchNormalization); ``Flatten`` and a ``Reshape`` that flattens; ShuffleNet's
``Reshape -> Transpose -> Reshape`` as one ``ChannelShuffle``; ``Transpose`` that changes
nothing, ``Identity`` and ``Dropout`` as pass-throughs; a zero ``Pad`` kept for the Conv or
AveragePool that reads it (``onnx_ops``).

Opset differences handled here: Softmax/LogSoftmax before 13 coerce the input to 2-D at
``axis`` (default 1; since 13 the axis alone, default -1); Dropout's ``ratio`` and
``training_mode`` inputs (12+); Pad's pads as input (11+); Clip's bounds as inputs (11+);
Add's legacy ``broadcast``/``axis`` (before 7).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.interop.onnx_plan import Context, Converter, Plan, Shape, Unsupported, only_first_output
from cnnlab.layers.activations import ELU, LeakyReLU, ReLU, Softmax
from cnnlab.layers.activations_extra import Hardswish, LogSoftmax, ReLU6
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.shuffle import ChannelShuffle


# ---- activations -------------------------------------------------------------------------------------
def simple(cls: type[Layer], **fixed: Any) -> Converter:
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


def hardswish(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    return Plan(node.name, Hardswish, {}, {}, [ctx.dynamic(node)])


def clip(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    x = ctx.dynamic(node)
    if ctx.opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = ctx.const(node, 1, "min"), ctx.const(node, 2, "max")
        low, high = (None if v is None else float(v) for v in (lo, hi))
    if low == 0 and high is None:
        return Plan(node.name, ReLU, {}, {}, [x])
    if low == 0 and high == 6:
        return Plan(node.name, ReLU6, {}, {}, [x])
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
    if x in ctx.squeezed and axis != 1:
        raise Unsupported("axis over GlobalAveragePool's (N, C) output")
    return Plan(node.name, LogSoftmax, {"axis": axis}, {}, [x])


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
    ctx.skip[tr.output[0]] = node.output[0]
    ctx.skip[back.output[0]] = node.output[0]
    return Plan(node.name, ChannelShuffle, {"groups": int(out[1])}, {}, [x], tensor=back.output[0])


def gather(ctx: Context, node: Any, attrs: dict[str, Any]) -> Plan:
    """A constant table indexed by the input, then Transpose (0, 2, 1): cnnlab's Embedding.

    cnnlab's Embedding is channels-first, (N, L) ids -> (N, D, L); torch exports it as this pair.
    """
    table = ctx.const(node, 0, "table")
    ids = ctx.dynamic(node, 1)
    readers = ctx.consumers.get(node.output[0], [])
    perm = [list(a.ints) for r in readers for a in r.attribute if a.name == "perm"]
    if table is None or table.ndim != 2 or int(attrs.get("axis", 0)) != 0 or ctx.rank(ids) != 2:
        raise Unsupported("only a lookup of rows of a constant 2-D table by (N, L) ids is an Embedding")
    if len(readers) != 1 or readers[0].op_type != "Transpose" or perm != [[0, 2, 1]]:
        raise Unsupported(
            "cnnlab's Embedding is channels-first: a Transpose (0, 2, 1) must follow the lookup"
        )
    ctx.skip[readers[0].output[0]] = node.output[0]
    args = {"num_embeddings": table.shape[0], "embedding_dim": table.shape[1]}
    return Plan(node.name, Embedding, args, {"weight": table}, [ids], tensor=readers[0].output[0])


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
    only_first_output(node, ctx)
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
    # Zeros are what Conv and AveragePool (counting pads) pad with, -inf what MaxPool pads with.
    takers = ("MaxPool",) if value == -math.inf else ("Conv", "AveragePool") if value == 0.0 else ()
    if mode != "constant" or not takers:
        raise Unsupported(
            f"mode={mode!r} value={value} (cnnlab folds zero padding into a Conv or AveragePool, "
            "-inf padding into a MaxPool)"
        )
    r = len(pads) // 2
    if r < 3 or any(v < 0 for v in pads) or pads[0] or pads[1] or pads[r] or pads[r + 1]:
        raise Unsupported(f"pads={pads} (cnnlab folds non-negative pads of the spatial axes only)")
    readers = ctx.consumers.get(node.output[0], [])
    if not readers or any(r.op_type not in takers for r in readers):
        kinds = sorted({r.op_type for r in readers}) or ["the model's output"]
        raise Unsupported(
            f"padding with {value} read by {', '.join(kinds)} (folded only into {' or '.join(takers)})"
        )
    ctx.pads[node.output[0]] = (x, pads, node.name or node.output[0])
    return node.output[0]


#: ONNX operator -> converter. Everything else is refused by name.
