"""A summary with one row per leaf layer of nested containers, named by state_dict path.

``Graph.summary`` gives one row per node; a node that is itself a ``Sequential`` or a
``Graph`` (a ResNet stage, an Inception block) is then one long line. ``expanded_rows``
walks into the containers: each leaf layer is a row named by its dotted path (the prefix
of its state_dict keys, ``layer1.0.conv1``) with the tensors it reads, so the branches and
joins of every block show (``inception3a.cat <- inception3a.branch1.relu, ...``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph, num_inputs
from cnnlab.layers.sequential import Sequential, _one_line, format_summary


def _leaf_name(name: str, layer: Layer) -> str:
    """The row name of a container's output: its last leaf's name (what the next row reads)."""
    if isinstance(layer, Sequential) and layer.layers:
        return _leaf_name(f"{name}.{len(layer.layers) - 1}", layer.layers[-1])
    if isinstance(layer, Graph) and layer.output_name is not None:
        return _leaf_name(f"{name}.{layer.output_name}", layer[layer.output_name])
    return name


def _rows(
    name: str, layer: Layer, inputs: list[str], shapes: list[tuple[int, ...]], rows: list[dict[str, Any]]
) -> tuple[int, ...]:
    """Append the rows of ``layer`` (reading tensors ``inputs`` of ``shapes``); return its output shape."""
    if isinstance(layer, Sequential):
        shape, reads = shapes[0], inputs
        for i, child in enumerate(layer.layers):
            child_name = f"{name}.{i}" if name else str(i)
            shape = _rows(child_name, child, reads, [shape], rows)
            reads = [_leaf_name(child_name, child)]
        return shape
    if isinstance(layer, Graph):
        names = dict(zip(layer.inputs, inputs, strict=True))  # the graph's inputs as the rows name them
        given = dict(zip(layer.inputs, shapes, strict=True))
        for node in layer.nodes.values():
            node_name = f"{name}.{node.name}" if name else node.name
            out = _rows(
                node_name, node.layer, [names[n] for n in node.inputs], [given[n] for n in node.inputs], rows
            )
            names[node.name] = _leaf_name(node_name, node.layer)
            given[node.name] = out
        return given[layer.output_name]  # type: ignore[index]
    out = (
        tuple(layer.output_shape(*shapes)) if num_inputs(layer) != 1 else tuple(layer.output_shape(shapes[0]))
    )
    rows.append(
        {
            "layer": f"{name} <- {', '.join(inputs)}: {_one_line(layer)}",
            "inputs": list(inputs),
            "output_shape": out[1:],
            "params": sum(int(np.prod(p.value.shape)) for p in layer.parameters()),
            "flops": layer.flops(*shapes),
            "formula": layer.formula(shapes[0]) if len(shapes) == 1 else None,
        }
    )
    return out


def expanded_rows(model: Layer, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """One summary row per leaf layer of ``model`` for one ``(C, H, W)`` example (keys as ``summary``'s).

    Example:
        >>> from cnnlab.layers.conv import Conv2D
        >>> from cnnlab.layers.merge import Concat
        >>> g = Graph("x")
        >>> g.add("a", Sequential(Conv2D(3, 2, 1, rng=0), Conv2D(2, 2, 1, rng=0)), "x")
        'a'
        >>> g.add("b", Conv2D(3, 1, 1, rng=0), "x")
        'b'
        >>> g.output(g.add("cat", Concat(), ["a", "b"]))
        >>> [row["layer"].split(":")[0] for row in expanded_rows(g, (3, 4, 4))]
        ['a.0 <- x', 'a.1 <- a.0', 'b <- x', 'cat <- a.1, b']
    """
    rows: list[dict[str, Any]] = []
    inputs = list(model.inputs) if isinstance(model, Graph) else ["x"]
    _rows("", model, inputs, [(1, *input_shape)], rows)
    return rows


def print_expanded(model: Layer, input_shape: tuple[int, ...], print_fn: Any = print) -> list[dict[str, Any]]:
    """Print the expanded table (``format_summary``'s layout) and return its rows."""
    rows = expanded_rows(model, input_shape)
    if print_fn is not None:
        print_fn(format_summary(rows, input_shape))
    return rows
