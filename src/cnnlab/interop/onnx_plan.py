"""What ONNX import plans before it builds: ``Plan``, ``Context`` and ``Unsupported``.

A converter (``cnnlab.interop.onnx_ops``, ``onnx_ops_shape``) reads one ONNX node (its
attributes, its constant inputs, the inferred shapes of its tensors) and returns a ``Plan``
(the layer class, its arguments and weights: nothing is built yet), or the name of the
tensor the node passes on unchanged (``Identity``, ``Dropout``, a ``Reshape`` that changes
nothing). What cnnlab cannot express raises ``Unsupported`` with the reason;
``cnnlab.interop.onnx_import`` collects every reason before it builds anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.init import dry_build
from cnnlab.layers.base import Layer
from cnnlab.layers.registry import MAX_PARAMETERS

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
        if name in self.pads and node.op_type not in ("Conv", "AveragePool", "MaxPool"):
            raise Unsupported(
                f"it reads the output of Pad {self.pads[name][2]!r}: padding is folded only "
                "into a following Conv or pool"
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


def refuse_attrs(attrs: dict[str, Any], allowed: dict[str, Any]) -> None:
    """Unsupported for an attribute whose value differs from the one cnnlab has."""
    bad = [f"{k}={attrs[k]!r} (cnnlab: {v!r})" for k, v in allowed.items() if k in attrs and attrs[k] != v]
    if bad:
        raise Unsupported("attribute " + ", ".join(bad))


def only_first_output(node: Any, ctx: Context) -> None:
    for extra in node.output[1:]:
        if extra and ctx.consumers.get(extra):
            raise Unsupported(f"its output {extra!r} (beyond the first) is used")


def pair_or_int(values: list[int]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else tuple(values)


def unpadded(ctx: Context, x: str) -> str:
    """The tensor a folded Pad read (the layer pads it itself), or ``x``."""
    return ctx.pads[x][0] if x in ctx.pads else x


def static_sizes(shape: Shape | None, n: int) -> list[int] | None:
    """The ``n`` spatial sizes of an (N, C, ...) shape when the file fixes them all, else None."""
    spatial = (shape or ())[2:]
    if len(spatial) != n or any(v is None for v in spatial):
        return None
    return [int(v) for v in spatial if v is not None]
