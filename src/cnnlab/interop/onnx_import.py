"""Import an ONNX model as a cnnlab model: ``from_onnx(path)``.

The steps, each before the next:

1. read the model (a path or an ``onnx.ModelProto``) and its opset (6 to 21 of the default
   domain; 7 to 21 is what the exporters in use write, 6 is the opset of ONNX's own
   ``pytorch-converted`` test data);
2. compute the constants: initializers, ``Constant`` and ``ConstantOfShape`` nodes, and every
   node whose inputs are all constants (``Unsqueeze`` of a weight, ``Transpose`` of a weight ...),
   evaluated once with ``onnx.reference``;
3. infer every tensor's shape (``onnx.shape_inference``) for the checks that need it;
4. plan one cnnlab layer per remaining node (``cnnlab.interop.onnx_ops``: the converters and
   what they fold) and collect what cnnlab lacks: an unsupported operator or attribute is
   refused here, with ONE message that lists every problem and the nodes where it occurs;
5. only then build the layers and set their weights.

The result is a ``Sequential`` when the layers form a chain (each reads the one before it),
and a ``Graph`` otherwise (node names from the ONNX node names, made identifiers). It is in
eval mode, float32 unless ``dtype`` says otherwise.

ONNX's ``GlobalAveragePool`` returns (N, C, 1, 1); cnnlab's ``GlobalAvgPool2D`` returns
(N, C). The importer accepts it where the difference does not matter (a Flatten after it,
activations, Softmax over the channels, the model's output: then the output is (N, C)) and
refuses it elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.interop import onnx_ops_decomposed as decomposed
from cnnlab.interop import onnx_ops_shape as shape_ops
from cnnlab.interop.onnx_ops import batchnorm, conv, gemm, global_avg_pool, global_reduce, matmul, pool
from cnnlab.interop.onnx_plan import Context, Converter, Plan, Unsupported
from cnnlab.layers.activations import ReLU, Sigmoid, Tanh
from cnnlab.layers.base import Layer
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential

#: The default-domain opsets the importer reads (attribute differences: ``onnx_ops``).
OPSETS = range(6, 22)

#: ONNX operator -> converter (``onnx_ops``, ``onnx_ops_shape``). Everything else is refused by name.
CONVERTERS: dict[str, Converter] = {
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batchnorm,
    "MaxPool": pool,
    "AveragePool": pool,
    "GlobalAveragePool": global_avg_pool,
    "ReduceMean": decomposed.reduce_mean,
    "ReduceMax": global_reduce,
    "Gather": shape_ops.gather,
    "Relu": shape_ops.simple(ReLU),
    "LeakyRelu": shape_ops.leaky_relu,
    "Sigmoid": shape_ops.simple(Sigmoid),
    "Tanh": shape_ops.simple(Tanh),
    "Elu": shape_ops.elu,
    "Clip": shape_ops.clip,
    "Softmax": shape_ops.softmax,
    "LogSoftmax": shape_ops.softmax,
    "LRN": shape_ops.lrn,
    "Concat": shape_ops.concat,
    "Add": shape_ops.add_or_sum,
    "Sum": shape_ops.add_or_sum,
    "Mul": shape_ops.mul,
    "Flatten": shape_ops.flatten,
    "Reshape": shape_ops.reshape,
    "Transpose": decomposed.transpose,
    "GatherND": decomposed.gather_nd,
    "Split": decomposed.split,
    "Identity": shape_ops.identity,
    "Dropout": shape_ops.dropout,
    "Pad": shape_ops.pad,
    "HardSwish": shape_ops.hardswish,
}


@dataclass
class Imported:
    """An imported model with what the ONNX file says about its input and output.

    ``input_shape`` / ``output_shape`` are one example's shape (no batch axis; None where
    the file leaves a size open); ``output_shape`` is cnnlab's (GlobalAveragePool: (C,)).
    """

    model: Layer
    input_name: str
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]
    opset: int
    #: Each layer's name (a Graph node, or a Sequential index as text) -> the ONNX tensor
    #: its output equals (for (N, C) outputs of GlobalAveragePool: ONNX's (N, C, 1, 1)).
    tensors: dict[str, str]


def from_onnx(model: Any, dtype: Any = np.float32) -> Layer:
    """Read an ONNX model (a ``.onnx`` path or an ``onnx.ModelProto``) as a cnnlab model.

    Args:
        model: the ``.onnx`` file, or the model already loaded with ``onnx.load``.
        dtype: the dtype of the weights (float32, as ONNX models are).

    Returns:
        A ``Sequential`` when the ONNX graph is a chain, else a ``Graph``; in eval mode.

    Raises:
        CnnlabError: onnx is not installed, the file cannot be read, its opset is outside
            6..21, or it uses operators/attributes cnnlab lacks (one message lists them all,
            with the nodes; nothing is built then).

    Example:
        >>> import onnx
        >>> from onnx import helper, TensorProto
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
        >>> graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
        >>> from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
        Sequential(
          (0): ReLU()
        )
    """
    return import_onnx(model, dtype).model


def import_onnx(model: Any, dtype: Any = np.float32) -> Imported:
    """``from_onnx`` with the input's name and shapes the file declares (see ``Imported``)."""
    onnx = _onnx()
    proto, where = _load(onnx, model)
    opset = _opset(proto, where)
    graph = proto.graph
    unfolded: dict[str, str] = {}
    consts = _constants(onnx, graph, opset, unfolded)
    nodes = [n for n in graph.node if not all(o in consts for o in n.output if o)]
    inputs = [i for i in graph.input if i.name not in consts]
    shapes = _shapes(onnx, proto, nodes, consts)
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ctx = Context(opset, consts, shapes, consumers)
    problems: dict[tuple[str, str], list[str]] = {}
    outputs = [o.name for o in graph.output]
    if len(outputs) != 1:
        problems[("model", f"{len(outputs)} outputs (a cnnlab model has one)")] = [", ".join(outputs)]
    for i, node in enumerate(nodes):
        label = node.name or f"{node.op_type}#{i} -> {node.output[0]}"
        reason = _plan_node(ctx, node, label, outputs)
        if node.output[0] in unfolded:
            reason = f"a node of constants that cannot be computed ({unfolded[node.output[0]]})"
        if reason is not None:
            problems.setdefault((node.op_type, reason), []).append(label)
    if problems:
        lines = [
            f"  - {op}: {why}; node{'s' if len(names) > 1 else ''} {', '.join(map(repr, names[:8]))}"
            + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            for (op, why), names in problems.items()
        ]
        raise CnnlabError(
            f"from_onnx: {where} uses what cnnlab lacks (nothing was built; opset {opset}):\n"
            + "\n".join(lines)
        )
    layer, tensors = _assemble(ctx, [i.name for i in inputs], ctx.resolve(outputs[0]), np.dtype(dtype))
    layer.eval()
    first = shapes.get(inputs[0].name, ()) if inputs else ()
    out = shapes.get(outputs[0], ())
    if ctx.resolve(outputs[0]) in ctx.squeezed:
        out = out[:2]
    name = inputs[0].name if inputs else ""
    return Imported(layer, name, tuple(first[1:]), tuple(out[1:]), opset, tensors)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise CnnlabError("ONNX import needs the onnx package: pip install 'cnnlab[onnx]'") from None
    return onnx


def _load(onnx: Any, model: Any) -> tuple[Any, str]:
    if isinstance(model, onnx.ModelProto):
        return model, f"the model {model.graph.name!r}"
    if not isinstance(model, (str, os.PathLike)):
        raise CnnlabError(
            f"from_onnx: expected a path or an onnx.ModelProto. Received: {type(model).__name__}"
        )
    try:
        return onnx.load(os.fspath(model)), os.fspath(model)
    except FileNotFoundError:
        raise CnnlabError(f"from_onnx: no such file: {os.fspath(model)}") from None
    except Exception as exc:  # protobuf's DecodeError and others: not an ONNX file
        raise CnnlabError(f"from_onnx: {os.fspath(model)} is not an ONNX model: {exc}") from None


def _opset(proto: Any, where: str) -> int:
    versions = {o.domain: o.version for o in proto.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None or opset not in OPSETS:
        raise CnnlabError(
            f"from_onnx: {where} uses opset {opset} of the default ONNX domain; cnnlab imports opsets "
            f"{OPSETS.start} to {OPSETS.stop - 1} (convert it with onnx.version_converter first)"
        )
    return int(opset)


# ---- constants --------------------------------------------------------------------------------------
def _constants(onnx: Any, graph: Any, opset: int, failed: dict[str, str]) -> dict[str, np.ndarray]:
    """Every tensor that does not depend on the model's input, computed once.

    A node of constants that cannot be evaluated is left out, with the reason in ``failed``
    (by its first output), so the refusal can name it.
    """
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in ("RandomNormal", "RandomUniform"):
            continue
        ins = [name for name in node.input if name]
        if not all(name in consts for name in ins) or node.op_type in ("Dropout",):
            continue
        if node.op_type == "Constant" and any(a.name == "sparse_value" for a in node.attribute):
            continue
        try:
            if node.op_type == "ConstantOfShape":  # np.full: far faster than the reference for weights
                value = [a.t for a in node.attribute if a.name == "value"]
                filler = numpy_helper.to_array(value[0]) if value else np.zeros(1, np.float32)
                shape = consts[node.input[0]].astype(np.int64)
                results = [np.full(shape, filler.reshape(()))]
            else:
                results = _evaluate(onnx, node, [consts[n] if n else None for n in node.input], opset)
        except Exception as exc:  # onnx.reference lacks it, or fails on it: the node is refused
            failed[node.output[0]] = f"{type(exc).__name__}: {exc}"
            continue
        consts.update({name: value for name, value in zip(node.output, results, strict=False) if name})
    return consts


def _evaluate(onnx: Any, node: Any, values: list[Any], opset: int) -> list[np.ndarray]:
    """One node run by ONNX's reference implementation (for constant folding)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if name else "" for i, name in enumerate(node.input)]
    outs = [f"out{i}" for i in range(len(node.output))]
    one = helper.make_node(node.op_type, names, outs, domain=node.domain)
    one.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [one],
        "fold",
        [helper.make_tensor_value_info(n, 0, None) for n in names if n],
        [helper.make_tensor_value_info(n, 0, None) for n in outs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: v for n, v in zip(names, values, strict=True) if n}
    return list(ReferenceEvaluator(model).run(None, feeds))


# ---- shapes -------------------------------------------------------------------------------------------
def _shapes(onnx: Any, proto: Any, nodes: list[Any], consts: dict[str, np.ndarray]) -> dict[str, Any]:
    """Every tensor's inferred shape (None for a size the file leaves open)."""
    from onnx import helper, numpy_helper

    used = {name for node in nodes for name in node.input if name in consts}
    small = [numpy_helper.from_array(np.asarray(consts[n]), n) for n in used if consts[n].size <= 64]
    big = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(consts[n].dtype), consts[n].shape)
        for n in used
        if consts[n].size > 64
    ]
    inputs = [i for i in proto.graph.input if i.name not in consts]
    graph = helper.make_graph(nodes, "shapes", [*inputs, *big], list(proto.graph.output), small)
    model = helper.make_model(graph)
    del model.opset_import[:]
    model.opset_import.extend(proto.opset_import)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # a model onnx itself cannot type: the checks that need shapes refuse
        inferred = model
    shapes: dict[str, Any] = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            dims = info.type.tensor_type.shape.dim
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return shapes


# ---- planning and building ---------------------------------------------------------------
def _plan_node(ctx: Context, node: Any, label: str, outputs: list[str]) -> str | None:
    """Plan ``node`` into ``ctx``; the reason it is unsupported, or None."""
    if node.domain not in ("", "ai.onnx"):
        return f"operator of the domain {node.domain!r} (cnnlab reads the default ONNX domain)"
    convert = CONVERTERS.get(node.op_type)
    if convert is None:
        return "no cnnlab layer for this operator"
    from onnx import helper

    attrs = {a.name: _attr(helper.get_attribute_value(a)) for a in node.attribute}
    try:
        result = convert(ctx, node, attrs)
    except Unsupported as exc:
        return str(exc)
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # a malformed node
        return f"cannot be read ({type(exc).__name__}: {exc})"
    out = node.output[0]
    if isinstance(result, Plan):
        result.node, result.output, result.tensor = label, out, result.tensor or out
        result.consumers = len(ctx.consumers.get(out, [])) + (out in outputs)
        ctx.plans[out] = result
        if result.inputs[0] in ctx.squeezed and result.cls not in (Dense, Flatten):
            ctx.squeezed.add(out)  # activations of (N, C) stay (N, C) where ONNX has (N, C, 1, 1)
    elif result != out:
        ctx.alias[out] = result
    return None


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_attr(v) for v in value]
    return value


def _identifier(text: str, taken: set[str]) -> str:
    name = re.sub(r"\W", "_", text).strip("_") or "node"
    if not name.isidentifier():
        name = f"n_{name}"
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def _assemble(ctx: Context, inputs: list[str], output: str, dtype: np.dtype) -> tuple[Layer, dict[str, str]]:
    """The planned layers as a Sequential (a chain) or a Graph; only what leads to the output."""
    needed, order, seen = {output}, [], set()
    for plan in reversed(list(ctx.plans.values())):
        if plan.output in needed and id(plan) not in seen:
            seen.add(id(plan))
            order.append(plan)
            needed.update(plan.inputs)
    order.reverse()
    if not order and output in inputs:  # the identity (an eval-mode Dropout alone): no layer
        return Sequential(), {}
    if not order:
        raise CnnlabError(f"from_onnx: the model's output {output!r} does not depend on its input")
    chain = len(inputs) == 1 and all(
        p.inputs == [inputs[0] if i == 0 else order[i - 1].output] for i, p in enumerate(order)
    )
    layers = [plan.build(dtype) for plan in order]
    if chain and order[-1].output == output:
        return Sequential(*layers), {str(i): plan.tensor for i, plan in enumerate(order)}
    taken: set[str] = set()
    names = {name: _identifier(name, taken) for name in inputs}
    graph = Graph(inputs=[names[n] for n in inputs])
    for plan, layer in zip(order, layers, strict=True):
        names[plan.output] = graph.add(_identifier(plan.node, taken), layer, [names[n] for n in plan.inputs])
    graph.output(names[output])
    return graph, {names[plan.output]: plan.tensor for plan in order}
