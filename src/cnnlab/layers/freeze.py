"""Which layers a backward pass can skip once some are frozen (transfer learning).

``layer.freeze()`` (``cnnlab.layers.base``) keeps a layer's weights: its params leave
``parameters()``, so no optimizer updates them. Work is saved as autograd saves it: a
gradient flows back only to where something still trains. A trainer marks the first layers
whose dL/dx nobody needs (``input_layers()``: those that read the data, or, once layers are
frozen, the first ones that train after the frozen part) with ``needs_input_grad = False``;
their backward stops the pass there, so the frozen layers before them compute no weight
gradient and no dL/dx (PyTorch: parameters with ``requires_grad=False`` on an input without
one). ``Sequential`` and ``Graph`` read the rules below; nothing changes for a model without
frozen layers.

- ``trains(layer)``: the layer, or a sub-layer, holds a parameter that is not frozen.
- ``leading_frozen(layers)``: how many leading layers of a chain nothing before trains.
- ``quiet_nodes(graph)``: a Graph's nodes that neither train nor read a node that trains.

Example:
    >>> from cnnlab.layers.conv import Conv2D
    >>> from cnnlab.layers.activations import ReLU
    >>> layers = [Conv2D(1, 2, 3, rng=0).freeze(), ReLU(), Conv2D(2, 2, 3, rng=1)]
    >>> leading_frozen(layers)  # the backward pass stops at the third layer
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.layers.base import Layer


def trains(layer: Layer) -> bool:
    """Whether ``layer`` or a sub-layer holds a parameter that is not frozen."""
    return any(sub.params and not sub.frozen for _, sub in layer.named_layers())


def holds_frozen(layer: Layer) -> bool:
    """Whether ``layer`` or a sub-layer is frozen."""
    return any(sub.frozen for _, sub in layer.named_layers())


def leading_frozen(layers: Sequence[Layer]) -> int:
    """How many leading ``layers`` need no backward once some are frozen (0 if none is).

    They are the layers before the first one that trains: no gradient flows into them.
    """
    if not any(holds_frozen(layer) for layer in layers):
        return 0
    for i, layer in enumerate(layers):
        if trains(layer):
            return i
    return len(layers)


def quiet_nodes(graph: Any) -> set[str]:
    """The names of ``graph``'s nodes that need no backward once some layers are frozen.

    A node is quiet when its layer does not train and each of its inputs is a graph input
    or a quiet node (so nothing before it trains). Empty when no layer is frozen.
    """
    if not any(holds_frozen(node.layer) for node in graph.nodes.values()):
        return set()
    quiet: set[str] = set()
    for node in graph.nodes.values():  # in order: inputs come first
        if not trains(node.layer) and all(n in graph.inputs or n in quiet for n in node.inputs):
            quiet.add(node.name)
    return quiet
