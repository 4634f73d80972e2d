"""The PyTorch twin of a ``Graph``: the same nodes, run in the same order, with the same keys.

``graph_to_torch(graph)`` builds a ``GraphModule``: an ``nn.ModuleDict`` of the node modules
(each node's layer converted by ``cnnlab.interop.to_torch``; then the graph's weights,
buffers, dtype and mode are copied)
whose ``forward`` runs them in the graph's order, feeding each the tensors its node reads.
Its state_dict keys are cnnlab's (``"stem.weight"``, ``"b2.0.weight"``). ``graph_from_torch``
is the way back. The multi-input layers map to two small modules defined here:

==========================  =========================================================
cnnlab                      PyTorch
==========================  =========================================================
Graph                       ``GraphModule(inputs, nodes, output)`` (an ``nn.ModuleDict``)
Concat(axis)                ``Concat(dim)``: ``torch.cat(xs, dim)``
Add()                       ``Add()``: ``x0 + x1 + ...``
==========================  =========================================================

``convert`` arguments let a converter that walks whole models (``to_torch``'s) pass itself
for the nodes, so a Graph inside a ``Sequential`` (or the reverse) converts in one walk.

PyTorch is optional: the classes are built on first use (``graph_modules()``) and are also
reachable as attributes of this module (``cnnlab.interop.torch_graph.GraphModule``), so a
layer table can name them by path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.interop.torch import from_torch, to_torch
from cnnlab.interop.torch_modules import import_torch
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add, Concat


@functools.cache
def graph_modules() -> SimpleNamespace:
    """Build (once) and return the classes ``.GraphModule``, ``.Concat`` and ``.Add``.

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> M = graph_modules()
        >>> M.Concat(1)(torch.zeros(2, 3), torch.ones(2, 1)).shape
        torch.Size([2, 4])
        >>> M.Add()(torch.ones(2), torch.ones(2), torch.ones(2)).tolist()
        [3.0, 3.0]
    """
    torch = import_torch()
    from torch import nn

    class Concat(nn.Module):
        """torch.cat of the inputs along ``dim`` (cnnlab's Concat)."""

        def __init__(self, dim=1):
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self):
            return f"dim={self.dim}"

    class Add(nn.Module):
        """The sum of the inputs, left to right (cnnlab's Add)."""

        def forward(self, x, *more):
            for other in more:
                x = x + other
            return x

    class GraphModule(nn.ModuleDict):
        """Nodes run in insertion order; node ``name`` reads ``edges[name]`` (graph inputs or nodes)."""

        def __init__(self, inputs, nodes, output):
            super().__init__({node["name"]: node["module"] for node in nodes})
            self.graph_inputs = list(inputs)
            self.graph_edges = {node["name"]: list(node["inputs"]) for node in nodes}
            self.graph_output = output

        def forward(self, x, *more):  # x first: torch.export matches dynamic shapes to x
            values = dict(zip(self.graph_inputs, (x, *more), strict=True))
            for name, module in self.items():
                values[name] = module(*(values[n] for n in self.graph_edges[name]))
            return values[self.graph_output]

    return SimpleNamespace(GraphModule=GraphModule, Concat=Concat, Add=Add)


def __getattr__(name: str) -> Any:
    """``cnnlab.interop.torch_graph.GraphModule`` (and Concat, Add): built on first access."""
    if name in ("GraphModule", "Concat", "Add"):
        return getattr(graph_modules(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def graph_to_torch(graph: Graph, convert: Callable[[Layer], Any] | None = None) -> Any:
    """The ``GraphModule`` twin of ``graph`` (weights, dtype and train/eval mode copied).

    Args:
        graph: a cnnlab ``Graph`` with its output set.
        convert: turns one node's layer into a torch module; default ``to_torch`` (which
            copies the node's weights). Graph, Concat and Add nodes are converted here.

    Raises:
        CnnlabError: torch is missing, a node's layer has no PyTorch equivalent, or a node
            name that ``nn.ModuleDict`` reserves (``keys``, ``items``, ``forward``, ...).

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> from cnnlab.layers.activations import ReLU
        >>> g = Graph("x")
        >>> r = g.add("r", ReLU(), "x")
        >>> cat = g.add("cat", Concat(), ["x", r])
        >>> g.output(cat)
        >>> graph_to_torch(g)(torch.tensor([[-1.0, 2.0]])).tolist()
        [[-1.0, 2.0, 0.0, 2.0]]
    """
    M = graph_modules()
    if graph.output_name is None:
        raise CnnlabError("to_torch: the Graph has no output; call graph.output(name) first")
    nodes = [
        {"name": node.name, "module": _module(node.layer, convert), "inputs": list(node.inputs)}
        for node in graph.nodes.values()
    ]
    try:
        module = M.GraphModule(graph.inputs, nodes, graph.output_name)
    except KeyError as exc:  # torch refuses a key that is an attribute of nn.ModuleDict
        raise CnnlabError(
            f"to_torch: a Graph node name is reserved by torch's nn.ModuleDict ({exc}); rename the node"
        ) from None
    # The whole graph's arrays, copied at the end in their own dtype (a node without
    # parameters, or one whose first layer has none, must not decide the dtype).
    torch = import_torch()
    state = graph.state_dict()
    dtype = next((v.dtype for v in state.values() if v.dtype.kind == "f"), np.dtype(np.float32))
    module.to({np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[dtype])
    with torch.no_grad():
        targets = module.state_dict(keep_vars=True)
        for key, value in state.items():
            targets[key].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module.train(graph.training)


def _module(layer: Layer, convert: Callable[[Layer], Any] | None) -> Any:
    M = graph_modules()
    if isinstance(layer, Graph):
        return graph_to_torch(layer, convert)
    if isinstance(layer, Concat):
        return M.Concat(layer.axis)
    if isinstance(layer, Add):
        return M.Add()
    return (convert or to_torch)(layer)


def graph_from_torch(module: Any, convert: Callable[[Any], Layer] | None = None) -> Graph:
    """The cnnlab ``Graph`` of a ``GraphModule`` (weights, dtype and mode copied).

    Args:
        module: a ``GraphModule`` (as ``graph_to_torch`` builds).
        convert: turns one node's module into a cnnlab layer; default ``from_torch``.

    Raises:
        CnnlabError: ``module`` is not a GraphModule, or a node module has no cnnlab layer.
    """
    M = graph_modules()
    if not isinstance(module, M.GraphModule):
        raise CnnlabError(f"from_torch: expected a GraphModule. Received: {type(module).__name__}")
    nodes = [
        {"name": name, "layer": _layer(child, convert), "inputs": module.graph_edges[name]}
        for name, child in module.items()
    ]
    return Graph(module.graph_inputs, nodes, module.graph_output).train(module.training)


def _layer(module: Any, convert: Callable[[Any], Layer] | None) -> Layer:
    M = graph_modules()
    if isinstance(module, M.GraphModule):
        return graph_from_torch(module, convert)
    if isinstance(module, M.Concat):
        return Concat(module.dim)
    if isinstance(module, M.Add):
        return Add()
    return (convert or from_torch)(module)
