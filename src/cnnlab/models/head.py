"""A classifier's head: the layer that gives one score per class, found and replaced.

Transfer learning (``cnnlab train --model MODEL --new-head``) keeps a trained network's
features and gives it a new head for the new data's classes. The head is the last layer
with parameters on the way to the output, found by walking back from the output over
layers without parameters (Flatten, Dropout, activations, pools); it must be

- a ``Dense`` (VGG, ResNet, GoogLeNet, DenseNet, MobileNet, ShuffleNet, the cnnlab zoo), or
- a ``Conv2D`` with a 1x1 kernel (SqueezeNet's classifier conv, before its global pool).

Inside a ``Sequential`` the walk goes from the last layer back; inside a ``Graph`` from the
output node back along nodes with one input; nested containers are entered. A trailing
``Softmax``/``LogSoftmax`` (some exported models end with one) is dropped by
``replace_head``: cnnlab's loss applies softmax itself.

Example:
    >>> from cnnlab.models.zoo import small
    >>> model = small(rng=0)
    >>> find_head(model).path, find_head(model).layer
    ('9', Dense(128, 10))
    >>> replace_head(model, 3, rng=1)
    'replaced 9: Dense(128, 10) -> Dense(128, 3)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.layers.activations import Softmax
from cnnlab.layers.activations_extra import LogSoftmax
from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph, Node
from cnnlab.layers.sequential import Sequential

#: Layers at the end of a model that a new head drops (the loss applies softmax itself).
SOFTMAXES = (Softmax, LogSoftmax)


@dataclass
class Head:
    """Where the head sits: its container, its key there (index or node name), its dotted path.

    ``softmaxes``: (container, key) of trailing Softmax/LogSoftmax layers after it.
    """

    container: Any
    key: int | str
    path: str
    layer: Layer
    softmaxes: list[tuple[Any, int | str]]


def is_head(layer: Layer) -> bool:
    """A ``Dense``, or a ``Conv2D`` with a 1x1 kernel and one group (a conv classifier)."""
    if isinstance(layer, Dense):
        return True
    return isinstance(layer, Conv2D) and layer._kernel == (1, 1) and layer.groups == 1


def find_head(model: Layer) -> Head:
    """The classifier of ``model`` (see the module doc).

    Raises:
        CnnlabError: the last layer with parameters is not a Dense or a 1x1 Conv2D, or the
            model has no layer with parameters (the message names what was found).
    """
    softmaxes: list[tuple[Any, int | str]] = []
    head = _walk(model, "", softmaxes)
    if head is None:
        raise CnnlabError(f"--new-head: {model.name} has no layer with parameters to replace")
    if not is_head(head.layer):
        raise CnnlabError(
            f"--new-head: the last layer with parameters, {head.path} ({head.layer!r}), is not a "
            "classifier: expected a Dense or a 1x1 Conv2D (the layer that gives one score per class)"
        )
    head.softmaxes = softmaxes
    return head


def _walk(layer: Layer, prefix: str, softmaxes: list[tuple[Any, int | str]]) -> Head | None:
    """The last layer with parameters from the output back (None: there is none on the way)."""
    if isinstance(layer, Sequential):
        for i in reversed(range(len(layer.layers))):
            child = layer.layers[i]
            if isinstance(child, SOFTMAXES):
                softmaxes.append((layer, i))
            found = _container_or_leaf(layer, i, child, f"{prefix}{i}", softmaxes)
            if found is not None:
                return found
        return None
    if isinstance(layer, Graph):
        name = layer.output_name
        while name is not None and name in layer.nodes:
            node = layer.nodes[name]
            if isinstance(node.layer, SOFTMAXES):
                softmaxes.append((layer, name))
            found = _container_or_leaf(layer, name, node.layer, f"{prefix}{name}", softmaxes)
            if found is not None:
                return found
            name = node.inputs[0] if len(node.inputs) == 1 else None  # a join: stop
        return None
    return Head(None, "", prefix, layer, []) if layer.params else None


def _container_or_leaf(
    container: Any, key: int | str, child: Layer, path: str, softmaxes: list[tuple[Any, int | str]]
) -> Head | None:
    if isinstance(child, (Sequential, Graph)):
        return _walk(child, path + ".", softmaxes)
    if child.params or child.children():  # a leaf with weights, or a block (Residual): stop here
        return Head(container, key, path, child, [])
    return None


def new_head_for(layer: Layer, num_classes: int, rng: Any) -> Layer:
    """A fresh classifier like ``layer`` (Dense or 1x1 Conv2D) with ``num_classes`` outputs."""
    if isinstance(layer, Dense):
        return Dense(layer.in_features, num_classes, bias=layer.bias, rng=rng)
    assert isinstance(layer, Conv2D)  # find_head checked
    return Conv2D(layer.in_channels, num_classes, 1, bias=layer.bias, rng=rng)


def replace_head(model: Layer, num_classes: int, rng: Any = None) -> str:
    """Replace ``model``'s head (``find_head``) in place by a fresh one for ``num_classes``.

    The new layer is initialized from ``rng`` (a seed or Generator) like any new layer, in
    the model's dtype; trailing Softmax/LogSoftmax layers are dropped. Returns a one-line
    description of what changed.
    """
    head = find_head(model)
    new = new_head_for(head.layer, num_classes, rng).astype(model.dtype)
    new.train(head.layer.training)
    _put(head.container, head.key, new)
    text = f"replaced {head.path}: {head.layer!r} -> {new!r}"
    for container, key in head.softmaxes:
        text += f"; dropped the final softmax ({key})"
        _drop(container, key)
    return text


def _put(container: Any, key: int | str, layer: Layer) -> None:
    if container is None:
        raise CnnlabError(f"--new-head: the model is a single layer ({layer!r}); nothing to keep")
    if isinstance(container, Sequential):
        container.layers[int(key)] = layer
    else:  # a Graph node keeps its name and inputs
        node = container.nodes[key]
        container.nodes[key] = Node(node.name, layer, node.inputs)
        container._order = None  # the run order holds the nodes: plan again


def _drop(container: Any, key: int | str) -> None:
    """Remove a trailing softmax: a Sequential loses the layer, a Graph's output moves back."""
    if isinstance(container, Sequential):
        del container.layers[int(key)]
        return
    node = container.nodes.pop(key)
    container._order = None
    container.output(node.inputs[0])
