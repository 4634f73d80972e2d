"""Grad-CAM and saliency maps: where in the image does the network look for a class?

Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391) weighs the K feature maps A_k of one
conv-stage layer by how much the target class's logit y_c grows with them:

    alpha_k = mean over (i, j) of d y_c / d A_k[i, j]        (N, K)
    cam     = ReLU(sum_k alpha_k * A_k)                       (N, h, w)

and divides each map by its maximum (an all-zero map stays zero). The saliency map
(Simonyan et al., 2014, arXiv:1312.6034) is |d y_c / d x|, the maximum over the input's
channels. Both run the model's own ``forward``/``backward`` (no autograd, no torch) in eval
mode (dropout off, batch norm on its running statistics, as at prediction time) on an
*inspection copy* of the model: new layer objects that share the weight arrays (read only)
but have their own caches, gradients and workspaces, so the model's mode, weights, caches
and gradients are exactly as they were (a training step in between keeps working).

A ``Sequential`` names its layers by index; a ``Graph`` by node name (``layer="inception3"``):
the activation and the gradient at that node come from ``Graph.forward_keep`` and
``Graph.backward_keep`` (the gradient summed over every node that reads it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from cnnlab.errors import ShapeError, arg_error
from cnnlab.functional.conv import ConvWorkspace
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph, Node
from cnnlab.viz.resize import bilinear_resize


def grad_cam(
    model: Any,
    x: np.ndarray,
    target: int | Sequence[int] | np.ndarray | None = None,
    layer: int | str | None = None,
    resize: bool = True,
) -> np.ndarray:
    """Grad-CAM heatmaps of ``target`` for a batch ``x``, each scaled to a maximum of 1.

    Args:
        model: a ``Sequential`` (what the zoo and the config builder return) or a one-input
            ``Graph`` whose output is the class logits (N, classes).
        x: ``(N, C, H, W)`` normalized inputs (as the model was trained on); computed in the
            model's dtype.
        target: the class per example: an int for all, or N ints; None (default) takes each
            example's predicted class.
        layer: an index into ``model.layers`` (negative counts from the end) whose output is
            a 4-D feature map, or for a Graph a node name; None (default) takes the last
            layer (node) whose output is 4-D with more than one pixel (a 1 x 1 map has no
            "where").
        resize: True (default) upsamples each map bilinearly to the input's H x W, with
            ``align_corners=False`` as ``torch.nn.functional.interpolate`` (see
            ``cnnlab.viz.resize.bilinear_resize``); False returns it at the layer's resolution.

    Returns:
        ``(N, H, W)`` (or ``(N, h, w)`` with ``resize=False``) float arrays in [0, 1]. The
        maximum is 1 at the layer's resolution; after upsampling it can be slightly lower
        (the bilinear samples fall between the map's pixels).

    Raises:
        ValueError: a bad ``layer`` index or ``target`` (the message says what fits).
        ShapeError: ``x`` not 4-D, or ``layer``'s output not a 4-D feature map.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, H, W) with ``resize``, else (N, h, w), the layer's map size.

    Example:
        >>> import numpy as np
        >>> from cnnlab.models import build_model
        >>> net = build_model("small", input_size=(8, 8), num_classes=3, rng=0)
        >>> x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
        >>> cam = grad_cam(net, x)
        >>> cam.shape, bool(cam.min() >= 0 and cam.max() <= 1)
        ((2, 8, 8), True)
        >>> grad_cam(net, x, target=[0, 2], layer=0, resize=False).shape
        (2, 8, 8)
    """
    layers, x = _check_model_and_input("grad_cam", model, x)
    if isinstance(model, Graph):
        feats, grad = _graph_cam_inputs(model, x, target, layer)
    else:
        net = [_inspection_copy(lay) for lay in layers]
        outputs = _forward(net, x)  # outputs[i] = output of layer i
        index = _pick_layer(layers, outputs, layer)
        targets = _targets("grad_cam", target, outputs[-1])
        grad = _backward(net, index + 1, _one_hot(outputs[-1], targets))  # dy_c/dA, (N, K, h, w)
        feats = outputs[index]  # A, (N, K, h, w)
    alpha = grad.mean(axis=(2, 3))  # (N, K): global-average-pooled gradients
    cam = np.maximum(np.einsum("nk,nkhw->nhw", alpha, feats), 0)  # (N, h, w)
    peak = cam.max(axis=(1, 2), keepdims=True)  # (N, 1, 1)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)  # all-zero stays zero
    return bilinear_resize(cam, x.shape[2:]) if resize else cam


def saliency(model: Any, x: np.ndarray, target: int | Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Saliency maps: |d logit of ``target`` / d input|, the maximum over the channels.

    Args:
        model, x, target: as for ``grad_cam``.

    Returns:
        ``(N, H, W)`` non-negative arrays (not rescaled: compare them within one model).

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, H, W)

    Example:
        >>> import numpy as np
        >>> from cnnlab.models import build_model
        >>> net = build_model("small", input_size=(8, 8), num_classes=3, rng=0)
        >>> saliency(net, np.zeros((2, 1, 8, 8), np.float32), target=1).shape
        (2, 8, 8)
    """
    layers, x = _check_model_and_input("saliency", model, x)
    if isinstance(model, Graph):
        graph = cast(Graph, _inspection_copy(model))
        logits = _logits(graph.forward(x))
        return np.abs(graph.backward(_one_hot(logits, _targets("saliency", target, logits)))).max(axis=1)
    net = [_inspection_copy(lay) for lay in layers]
    outputs = _forward(net, x)
    targets = _targets("saliency", target, outputs[-1])
    dx = _backward(net, 0, _one_hot(outputs[-1], targets))  # (N, C, H, W)
    return np.abs(dx).max(axis=1)  # (N, H, W)


# ---- the passes ---------------------------------------------------------------------------
def _graph_cam_inputs(model: Graph, x: np.ndarray, target: Any, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """A, the feature maps at ``node`` (checked, or the default), and dy_c/dA, both (N, K, h, w)."""
    shapes = model.shapes(x.shape)
    four_d = [n for n in model.nodes if len(shapes[n]) == 4]
    if node is None:
        node = graph_default_node(model, x.shape[1:])
    elif not isinstance(node, str) or node not in model.nodes:
        raise arg_error("grad_cam", "layer", f"a node name of the Graph ({', '.join(model.nodes)})", node)
    elif len(shapes[node]) != 4:
        raise ShapeError(
            f"grad_cam: node {node!r} ({type(model[node]).__name__}) must output a 4-D feature map "
            f"(N, C, h, w). Received: shape {shapes[node]}. Nodes with 4-D outputs: "
            f"{', '.join(four_d) or 'none'}"
        )
    graph = cast(Graph, _inspection_copy(model))
    out, feats = graph.forward_keep(x, keep=[node])
    logits = _logits(out)
    _, grads = graph.backward_keep(_one_hot(logits, _targets("grad_cam", target, logits)), keep=[node])
    return feats[node], grads[node]


def graph_default_node(model: Graph, input_shape: tuple[int, ...] | Sequence[int]) -> str:
    """``grad_cam``'s default node of a Graph: the last whose output is a 4-D map with more
    than one pixel, else the last 4-D one (in the order the nodes run)."""
    shapes = model.shapes((1, *input_shape))
    names = list(model.nodes)
    return names[_last_map([shapes[n] for n in names])]


def _logits(out: np.ndarray) -> np.ndarray:
    if out.ndim != 2:
        raise ShapeError(
            f"the model's output must be the class logits of shape (N, classes). Received: shape {out.shape}"
        )
    return out


def _check_model_and_input(where: str, model: Any, x: Any) -> tuple[list[Layer], np.ndarray]:
    layers = list(model.children().values()) if isinstance(model, Graph) else getattr(model, "layers", None)
    if not isinstance(layers, list) or not layers or not all(isinstance(lay, Layer) for lay in layers):
        raise arg_error(
            where, "model", "a cnnlab Sequential or Graph (a model with layers)", type(model).__name__
        )
    if getattr(model, "num_inputs", 1) != 1:
        raise arg_error(where, "model", "a model with one input", f"a Graph with inputs {model.inputs}")
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        received = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ShapeError(f"{where}: x must be a numpy array of shape (N, C, H, W). Received: {received}")
    return layers, x.astype(model.dtype, copy=False)


def _inspection_copy(layer: Layer) -> Layer:
    """A copy of ``layer`` in eval mode that shares the weight arrays but nothing it writes.

    Caches, gradients and conv workspaces are fresh; sub-layers (attributes holding a layer
    or a list of layers, as in ``Sequential`` and ``Residual``) are copied the same way.
    Every conv computes dL/dx (``needs_input_grad``), which saliency needs.
    """
    clone = copy.copy(layer)  # shallow: the params/buffers dicts are replaced just below
    clone.params, clone.buffers, clone.grads = dict(layer.params), dict(layer.buffers), {}
    clone._cache = None
    for name, value in vars(layer).items():
        if isinstance(value, Layer):
            setattr(clone, name, _inspection_copy(value))
        elif isinstance(value, list) and value and all(isinstance(v, Layer) for v in value):
            setattr(clone, name, [_inspection_copy(v) for v in value])
        elif isinstance(value, ConvWorkspace):
            setattr(clone, name, ConvWorkspace())
    if isinstance(layer, Graph) and isinstance(clone, Graph):  # each node's layer copied; a fresh plan
        clone.nodes = {n: Node(n, _inspection_copy(v.layer), v.inputs) for n, v in layer.nodes.items()}
        clone._order = None
    if hasattr(clone, "needs_input_grad"):
        clone.needs_input_grad = True
    clone.training = False  # eval mode for this copy only (its children are set by their own copy)
    return clone


def _forward(layers: list[Layer], x: np.ndarray) -> list[np.ndarray]:
    """Run the layers one by one (no fused pairs: every layer keeps its own output)."""
    outputs = []
    for lay in layers:
        x = lay.forward(x)
        outputs.append(x)
    if outputs[-1].ndim != 2:
        raise ShapeError(
            "the model's output must be the class logits of shape (N, classes). "
            f"Received: shape {outputs[-1].shape}"
        )
    return outputs


def _backward(layers: list[Layer], stop: int, dy: np.ndarray) -> np.ndarray:
    """Chain rule from the logits back to the input of ``layers[stop]``."""
    for lay in reversed(layers[stop:]):
        dy = lay.backward(dy)
    return dy


def _one_hot(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """d y_c / d logits: 1 at each example's target class (examples are independent in eval)."""
    dy = np.zeros_like(logits)  # (N, classes)
    dy[np.arange(len(logits)), targets] = 1
    return dy


def _targets(where: str, target: Any, logits: np.ndarray) -> np.ndarray:
    """One class index per example: the predicted class for None, an int broadcast, or N ints."""
    N, classes = logits.shape
    if target is None:
        return np.asarray(logits.argmax(axis=1))
    values = np.asarray(target)
    if values.ndim == 0:
        values = np.full(N, values)
    ok = (
        values.shape == (N,)
        and values.dtype.kind in "iu"
        and bool(np.all((values >= 0) & (values < classes)))
    )
    if not ok:
        expected = f"None, a class index in [0, {classes}) or {N} of them (one per example)"
        raise arg_error(where, "target", expected, target)
    return values.astype(np.intp)


def default_layer(model: Any, input_shape: tuple[int, ...] | Sequence[int]) -> int:
    """The index of ``grad_cam``'s default layer for inputs of ``input_shape`` (C, H, W).

    The last layer whose output is a 4-D feature map with more than one pixel (a 1 x 1
    map has no "where"), else the last 4-D one.

    Example:
        >>> from cnnlab.models import build_model
        >>> net = build_model("small", input_size=(8, 8), num_classes=3, rng=0)
        >>> i = default_layer(net, (1, 8, 8))
        >>> i, net.layers[i]
        (5, MaxPool2D(2))
    """
    shape: tuple[int, ...] = (1, *input_shape)
    shapes = []
    for lay in model.layers:
        shape = lay.output_shape(shape)
        shapes.append(shape)
    return _last_map(shapes)


def _last_map(shapes: list[tuple[int, ...]]) -> int:
    four_d = [i for i, shape in enumerate(shapes) if len(shape) == 4]
    wide = [i for i in four_d if shapes[i][2] * shapes[i][3] > 1]
    if not (wide or four_d):
        raise ShapeError("grad_cam: the model has no layer with a 4-D (N, C, h, w) output")
    return (wide or four_d)[-1]


def _pick_layer(layers: list[Layer], outputs: list[np.ndarray], layer: Any) -> int:
    """The index of the Grad-CAM layer: ``layer`` checked, or the default."""
    four_d = [i for i, out in enumerate(outputs) if out.ndim == 4]
    if layer is None:
        return _last_map([out.shape for out in outputs])
    count = len(layers)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -count <= layer < count:
        raise arg_error(
            "grad_cam", "layer", f"an index into model.layers, from {-count} to {count - 1}", layer
        )
    index = int(layer) % count
    if outputs[index].ndim != 4:
        raise ShapeError(
            f"grad_cam: layer {index} ({type(layers[index]).__name__}) must output a 4-D feature map "
            f"(N, C, h, w). Received: shape {outputs[index].shape}. Layers with 4-D outputs: "
            f"{', '.join(map(str, four_d)) or 'none'}"
        )
    return index
