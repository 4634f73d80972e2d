"""``fuse(model)``: a training view of a model that runs common layer pairs as one layer.

The model a user builds reads like the lecture: a ``Sequential`` runs its layers one after
another. Speed is a separate, explicit step: ``fuse`` returns a view of the model in which
three kinds of pairs inside a ``Sequential`` run as one layer, with the same values and
gradients at less cost (docs/performance.md):

- ``ReLU`` directly followed by ``MaxPool2D`` -> ``ReLUMaxPool2D``. Max pooling commutes
  with ReLU (ReLU is monotone: ``max(relu(a), relu(b)) = relu(max(a, b))``), so the fused
  layer pools first and applies ReLU to the 4x smaller map, and its backward applies
  ReLU's rule to the pooled gradient.
- ``BatchNorm1D``/``BatchNorm2D`` directly followed by a ``ReLU`` that is not fused with a
  pool -> ``BatchNormReLU``: the ReLU runs in place on the normalized rows while they are
  in cache, on both cores, and its backward masks the gradient inside BatchNorm's backward.
- ``Residual`` directly followed by a ``ReLU`` -> ``ResidualReLU``: the add and the ReLU in
  one pass over channel ranges on all cores (``functional.elementwise``).

The view holds the model's own leaf layers, so it shares every parameter, gradient, buffer
and random stream with the model: an optimizer made from ``model.parameters()`` updates
the arrays the view computes with, and ``save(model)`` writes the unfused architecture.
Only ``Sequential``, ``Residual`` and ``Graph`` containers are rebuilt (a Graph view has the
same nodes and wiring, each node's layer fused); the model itself is unchanged.

Example:
    >>> import numpy as np
    >>> from cnnlab.layers.activations import ReLU
    >>> from cnnlab.layers.conv import Conv2D
    >>> from cnnlab.layers.pooling import MaxPool2D
    >>> from cnnlab.layers.sequential import Sequential
    >>> net = Sequential(Conv2D(1, 4, 3, padding=1, rng=0), ReLU(), MaxPool2D(2))
    >>> view = fuse(net)
    >>> view.layers[1]
    ReLUMaxPool2D(ReLU(), MaxPool2D(2))
    >>> view.layers[0] is net.layers[0]
    True
    >>> x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    >>> bool(np.array_equal(view.forward(x), net.forward(x)))
    True
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import numpy as np

from cnnlab.functional.elementwise import add, add_relu, relu_backward
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.pool import max_pool2d_2x2, max_pool2d_2x2_backward
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.graph import Graph
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential

L = TypeVar("L", bound=Layer)


class ReLUMaxPool2D(Layer, register=False):
    """``pool.forward(relu.forward(x))`` in one step: pool first, then ReLU on the pooled map.

    Made by ``fuse`` from a model's own ``ReLU`` and ``MaxPool2D`` (no parameters). For a
    2x2 / stride-2 pool (the common case, ``pool.is_2x2``) it runs
    ``max_pool2d_2x2(x, relu=True)``; otherwise it simply runs the two layers. Not in the
    layer registry: a training-time view, never saved (the model's config has both layers).

    Args:
        relu: the ReLU layer of the pair.
        pool: the MaxPool2D layer right after it.

    Shape:
        - Input: (N, C, H, W)
        - Output: (N, C, H_out, W_out), as ``pool.output_shape``.
    """

    def __init__(self, relu: ReLU, pool: MaxPool2D) -> None:
        super().__init__()
        self.relu = relu
        self.pool = pool

    def children(self) -> dict[str, Layer]:
        return {"relu": self.relu, "pool": self.pool}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not (isinstance(x, np.ndarray) and self.pool.is_2x2(x.shape)):
            self._cache = (None, None, None)  # backward runs the two layers' backward
            return self.pool.forward(self.relu.forward(x))
        self.pool.output_shape(x.shape)  # the pool's clear error for inputs smaller than a window
        y, masks = max_pool2d_2x2(x, relu=True)  # (N, C, H_out, W_out) = maxpool(relu(x))
        self._cache = (x.shape, masks, y)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape, masks, y = self._cached()
        if masks is None:
            return self.relu.backward(self.pool.backward(dy))
        self._check_dy(dy, y.shape)
        # ReLU's rule on the pooled map (dy where y > 0), then routed to each window's max.
        return max_pool2d_2x2_backward(dy, masks, x_shape, relu_y=y)  # (N, C, H, W)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.pool.output_shape(input_shape)

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        return self.pool.formula(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Counted as the two layers it replaces (the work it saves is speed, not math)."""
        return self.relu.flops(input_shape) + self.pool.flops(input_shape)


class BatchNormReLU(Layer, register=False):
    """``relu.forward(bn.forward(x))`` in one step: the ReLU runs inside BatchNorm's passes.

    Made by ``fuse`` from a model's own ``BatchNorm1D``/``BatchNorm2D`` and the ``ReLU``
    after it. The BatchNorm layer does the work (``forward_fused``/``backward_fused``): its
    parameters, running statistics, gradients and train/eval mode are the model's. Not in
    the layer registry: a training-time view, never saved (the model's config has both
    layers).

    Args:
        bn: the BatchNorm layer of the pair.
        relu: the ReLU layer right after it.

    Shape:
        - Input: as ``bn`` ((N, C, H, W) for BatchNorm2D; (N, F) or (N, C, L) for
          BatchNorm1D).
        - Output: same as the input.
    """

    def __init__(self, bn: BatchNorm1D | BatchNorm2D, relu: ReLU) -> None:
        super().__init__()
        self.bn = bn
        self.relu = relu

    def children(self) -> dict[str, Layer]:
        return {"bn": self.bn, "relu": self.relu}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.bn.forward_fused(x, relu=True)  # max(0, bn(x)), like x
        self._cache = y.shape
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._cached()
        self._check_dy(dy, shape)
        return self.bn.backward_fused(dy)  # like x

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.bn.output_shape(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Counted as the two layers it replaces (the work it saves is speed, not math)."""
        return self.bn.flops(input_shape) + self.relu.flops(input_shape)


class ResidualReLU(Layer, register=False):
    """``relu.forward(residual.forward(x))`` in one step: ``max(block(x) + shortcut(x), 0)``.

    Made by ``fuse`` from a (fused view of a) ``Residual`` and the ``ReLU`` after it, as in
    every block of a ResNet. The add and the ReLU run as one pass, and the backward's mask
    and sum as passes over channel ranges on all cores (``functional.elementwise``); the
    block and shortcut run their own forward and backward.

    Args:
        residual: the Residual layer of the pair.
        relu: the ReLU layer right after it.

    Shape:
        - Input: whatever ``residual`` takes.
        - Output: ``residual``'s output shape.
    """

    def __init__(self, residual: Residual, relu: ReLU) -> None:
        super().__init__()
        self.residual = residual
        self.relu = relu

    def children(self) -> dict[str, Layer]:
        return {"residual": self.residual, "relu": self.relu}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        res = self.residual
        out = res.block.forward(x)
        skip = x if res.shortcut is None else res.shortcut.forward(x)
        if out.shape != skip.shape:
            raise res._mismatch(out.shape, skip.shape)
        y = add_relu(out, skip)  # max(out + skip, 0), like out
        self._cache = y
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        y = self._cached()
        self._check_dy(dy, y.shape)
        g = relu_backward(dy, y)  # the gradient reaching the sum, like dy
        res = self.residual
        dx = res.block.backward(g)
        return add(dx, g if res.shortcut is None else res.shortcut.backward(g))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.residual.output_shape(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Counted as the two layers it replaces (the work it saves is speed, not math)."""
        return self.residual.flops(input_shape) + self.relu.flops(self.residual.output_shape(input_shape))


FUSED_LAYERS = (ReLUMaxPool2D, BatchNormReLU, ResidualReLU)  # each runs two of the model's layers


def fuse(model: L) -> L:
    """A view of ``model`` with ReLU -> MaxPool2D, BatchNorm -> ReLU and Residual -> ReLU
    pairs run as one layer.

    Args:
        model: any layer; ``Sequential``, ``Residual`` and ``Graph`` containers are searched
            recursively, other layers are returned as they are.

    Returns:
        A layer that computes what ``model`` computes (bit for bit on conv-shaped input; a
        BatchNorm1D's gradient sums may add in another order, ~1e-16 relative), built from
        ``model``'s own leaf layers (parameters, gradients, buffers and random streams are
        shared). Its containers are new objects, so its ``state_dict`` keys may differ from
        the model's: save, load and build optimizers from ``model``, step with the view.
    """
    return cast(L, _fused(model))


def _fused(model: Layer) -> Layer:
    if type(model) is Sequential:  # not subclasses: they may run their layers differently
        layers: list[Layer] = []
        for layer in (_fused(child) for child in model.layers):
            previous = layers[-1] if layers else None
            if type(layer) is MaxPool2D and type(previous) is ReLU:
                layers[-1] = _same_mode(ReLUMaxPool2D(previous, layer), model)
            else:
                layers.append(layer)
        # Then each BatchNorm or Residual with a ReLU right after it (a ReLU fused with a pool
        # stays so: there the ReLU runs on the 4x smaller pooled map).
        paired: list[Layer] = []
        for layer in layers:
            previous = paired[-1] if paired else None
            if type(layer) is ReLU and type(previous) in (BatchNorm1D, BatchNorm2D):
                paired[-1] = _same_mode(BatchNormReLU(cast(BatchNorm2D, previous), layer), model)
            elif type(layer) is ReLU and type(previous) is Residual:
                paired[-1] = _same_mode(ResidualReLU(cast(Residual, previous), layer), model)
            else:
                paired.append(layer)
        return _same_mode(Sequential(*paired), model)
    if type(model) is Residual:
        shortcut = None if model.shortcut is None else _fused(model.shortcut)
        return _same_mode(Residual(_fused(model.block), shortcut), model)
    if type(model) is Graph:  # each node's layer fused; the same wiring
        nodes = [
            {"name": node.name, "layer": _fused(node.layer), "inputs": list(node.inputs)}
            for node in model.nodes.values()
        ]
        return _same_mode(Graph(model.inputs, nodes, model.output_name), model)
    return model


def _same_mode(view: Any, model: Layer) -> Any:
    view.training = model.training
    return view
