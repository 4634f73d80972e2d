"""Run a model layer by layer to look inside: feature maps and penultimate-layer features.

Works on a ``Sequential`` (what the zoo and the config builder return) or a ``Graph`` (its
named nodes) in eval mode, so dropout is off and batch norm uses its running statistics,
exactly as at prediction time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.layers.graph import Graph

#: Layer type names whose output is a feature map worth drawing (the lecture's conv and
#: pooling stages); a container holding a conv (e.g. a residual block) counts as a conv.
MAP_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D", "Residual")


def layer_label(index: int | str, layer: Any) -> str:
    """A short one-line name for a layer, e.g. ``"0: Conv2D(1, 32, kernel_size=3)"`` (a Graph
    node's name in place of the index)."""
    text = repr(layer) if not layer.children() else type(layer).__name__
    return f"{index}: {text.splitlines()[0]}"


def feature_maps(
    model: Any, x: np.ndarray, nodes: Sequence[str] | None = None
) -> list[tuple[str, np.ndarray]]:
    """Outputs of every conv/pool layer for a batch ``x`` (eval mode).

    Args:
        model: a ``Sequential``, or a one-input ``Graph``.
        x: ``(N, C, H, W)`` normalized inputs.
        nodes: for a Graph, the node names to return; None (default): every node whose
            output is a 4-D map, in the order the nodes run. Labels are ``"name: Layer"``.

    Returns:
        ``(label, output)`` pairs, output ``(N, C_out, H_out, W_out)``, in forward order.

    Example:
        >>> import numpy as np
        >>> from cnnlab.models import build_model
        >>> net = build_model("small", in_channels=1, input_size=(8, 8), num_classes=3, rng=0)
        >>> [(name, out.shape) for name, out in feature_maps(net, np.zeros((1, 1, 8, 8), np.float32))][1]
        ('2: MaxPool2D(2)', (1, 32, 4, 4))
    """
    if isinstance(model, Graph):
        return _graph_maps(model, x, nodes)
    if nodes is not None:
        raise ValueError(
            f"feature_maps: `nodes` names the nodes of a Graph. Received: nodes={nodes!r} for a "
            f"{type(model).__name__}"
        )
    maps = []
    with _eval(model):
        for i, layer in enumerate(_layers(model)):
            x = layer.forward(x)
            if type(layer).__name__ in MAP_LAYERS and x.ndim == 4:
                maps.append((layer_label(i, layer), x))
    return maps


def _graph_maps(model: Graph, x: np.ndarray, nodes: Sequence[str] | None) -> list[tuple[str, np.ndarray]]:
    """The named nodes' outputs (``Graph.forward_keep``), default every node with a 4-D output."""
    if nodes is None:
        shapes = model.shapes(x.shape)
        nodes = [n for n in model.nodes if len(shapes[n]) == 4]
    unknown = [n for n in nodes if n not in model.nodes]
    if isinstance(nodes, str) or unknown:
        raise ValueError(
            f"feature_maps: `nodes` must be a list of node names ({', '.join(model.nodes)}). "
            f"Received: nodes={nodes!r}"
        )
    with _eval(model):
        _, kept = model.forward_keep(x, keep=list(nodes))
    return [(layer_label(n, model[n]), kept[n]) for n in nodes]


def penultimate_features(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The input of the last layer with parameters (the classifier) for each example.

    This is the representation the network learned ("automatic feature extraction"): the
    classifier is only a linear map on it.

    In a ``Graph``: the input of the last node with parameters, run through that node's
    layers before its last layer with parameters when the node is a ``Sequential`` (a
    ``GlobalAvgPool2D, Flatten, Dense`` head gives the pooled features).

    Returns:
        ``(N, F)`` features (flattened when the layer's input has more axes).
    """
    if isinstance(model, Graph):
        name, layers = _graph_features(model)
    else:
        name, layers = None, _layers(model)
    last = max((i for i, layer in enumerate(layers) if layer.parameters()), default=len(layers))
    outs = []
    with _eval(model):
        for start in range(0, len(x), batch_size):
            h = x[start : start + batch_size]
            if name is not None:  # the tensor the Graph's last node with parameters reads
                h = model.forward_keep(h, keep=[name])[1][name]
            for layer in layers[:last]:
                h = layer.forward(h)
            outs.append(h.reshape(len(h), -1))  # (B, F)
    return np.concatenate(outs) if outs else np.empty((0, 0), dtype=np.float32)


def _graph_features(model: Graph) -> tuple[str, list[Any]]:
    """The tensor the last node with parameters reads (its first input), and that node's layers."""
    nodes = [node for node in model.nodes.values() if node.layer.parameters()]
    node = nodes[-1] if nodes else model.nodes[model.output_name]  # type: ignore[index]
    return node.inputs[0], _layers(node.layer)


def _layers(model: Any) -> list[Any]:
    return list(model.layers) if hasattr(model, "layers") else [model]


class _eval:
    """Context manager: eval mode inside, the previous training flag restored after."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.was_training = bool(getattr(model, "training", False))

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)
