"""Layers that join several tensors into one: ``Concat`` (along the channel axis) and ``Add``.

The multi-input contract (used by ``cnnlab.layers.graph.Graph``, whose nodes may have
several inputs):

- ``y = layer.forward(x0, x1, ...)`` takes the inputs in order and caches what backward needs.
- ``dxs = layer.backward(dy)`` returns a tuple with one gradient per input, in the same
  order (``dxs[i]`` is dL/dx_i, the shape of ``x_i``).
- ``layer.output_shape(shape0, shape1, ...)`` and ``layer.flops(shape0, shape1, ...)`` take
  one shape per input.
- ``layer.num_inputs`` is ``None`` (any number, at least one). A single-input layer has no
  such attribute (or 1) and keeps the one-array contract of ``cnnlab.layers.base``.

Neither layer has parameters, so neither writes ``grads``. Their PyTorch twins are the small
modules ``Concat`` (``torch.cat``) and ``Add`` (a sum) of ``cnnlab.interop.torch_modules``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error
from cnnlab.functional.elementwise import add
from cnnlab.layers.base import Layer, TorchSpec


class _Merge(Layer):
    """Shared checks of the multi-input layers (a private name: not registered)."""

    #: Any number of inputs (>= 1); the graph executor reads this.
    num_inputs: int | None = None

    def __call__(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        return self.forward(x, *more)

    def _shapes(self, xs: tuple[Any, ...]) -> list[tuple[int, ...]]:
        """The inputs' shapes, after checking that each is an array of the same ndim."""
        for i, x in enumerate(xs):
            if not isinstance(x, np.ndarray):
                raise TypeError(
                    f"{self.name}: input {i} must be a numpy.ndarray. Received: {type(x).__name__}"
                )
        return self._check_shapes([x.shape for x in xs])

    def _check_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        shapes = [tuple(s) for s in shapes]
        for i, shape in enumerate(shapes[1:], start=1):
            if len(shape) != len(shapes[0]):
                raise ShapeError(
                    f"{self.name}: every input must have the same number of axes as input 0. "
                    f"Received: input 0 shape {shapes[0]}, input {i} shape {shape}"
                )
        return shapes


class Concat(_Merge):
    """Joins its inputs along ``axis`` (the channel axis by default), like ``torch.cat``.

    Used where parallel branches meet (GoogLeNet's Inception blocks, Szegedy et al., 2015,
    arXiv:1409.4842) or where a layer sees every earlier feature map (DenseNet, Huang et
    al., 2017, arXiv:1608.06993). The backward pass cuts ``dy`` back into the inputs' pieces:
    each input receives the slice of the gradient that its values were copied to.

    Args:
        axis: the axis to join along; 1 is the channel axis of ``(N, C, H, W)`` and the
            feature axis of ``(N, F)``. Negative values count from the end.

    Shape:
        - Inputs: ``(N, C_i, H, W)`` each (any number of axes, the same for every input);
          every axis but ``axis`` must be equal.
        - Output: ``(N, C_0 + C_1 + ..., H, W)``.

    Example:
        >>> import numpy as np
        >>> cat = Concat()
        >>> cat.forward(np.zeros((2, 3, 4, 4)), np.ones((2, 5, 4, 4))).shape
        (2, 8, 4, 4)
        >>> [dx.shape for dx in cat.backward(np.ones((2, 8, 4, 4)))]
        [(2, 3, 4, 4), (2, 5, 4, 4)]
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.Concat", onnx_ops=("Concat",))

    def torch_args(self) -> dict[str, Any]:
        return {"dim": self.axis}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"axis": int(module.dim)}

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise arg_error("Concat", "axis", "an int", axis)
        self.axis = axis

    def _axis(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim:
            raise ShapeError(
                f"Concat: axis {self.axis} is out of range for inputs with {ndim} axes. "
                f"Received: axis={self.axis}"
            )
        return self.axis % ndim

    def output_shape(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> tuple[int, ...]:
        shapes = self._check_shapes([input_shape, *more])
        axis = self._axis(len(shapes[0]))
        first = shapes[0]
        for i, shape in enumerate(shapes[1:], start=1):
            if any(a != b for d, (a, b) in enumerate(zip(first, shape, strict=True)) if d != axis):
                others = ", ".join(f"axis {d}" for d in range(len(first)) if d != axis)
                raise ShapeError(
                    f"Concat: input {i} must match input 0 on every axis but axis {axis} ({others}). "
                    f"Received: input 0 shape {first}, input {i} shape {shape}"
                )
        return (*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1 :])

    def forward(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        xs = (x, *more)
        self.output_shape(*self._shapes(xs))  # raises the ShapeError that names the input
        axis = self._axis(x.ndim)
        self._cache = (axis, [xi.shape[axis] for xi in xs])
        shape = list(x.shape)
        shape[axis] = sum(xi.shape[axis] for xi in xs)
        # Laid out in memory like x (the convs' outputs are channel-first, CNHW, and the
        # next conv reads that layout without a transposing copy).
        out = np.empty_like(x, dtype=np.result_type(*xs), shape=tuple(shape))
        return np.concatenate(xs, axis=axis, out=out)  # (N, sum C_i, H, W)

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        axis, sizes = self._cached()
        # y is the inputs side by side, so dL/dx_i is dy's slice where x_i was copied.
        index: list[Any] = [slice(None)] * dy.ndim
        dxs, start = [], 0
        for size in sizes:
            index[axis] = slice(start, start + size)
            dxs.append(dy[tuple(index)])  # (N, C_i, H, W), a view of dy
            start += size
        return tuple(dxs)

    def flops(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> int:
        """A copy: no arithmetic."""
        return 0


class Add(_Merge):
    """The elementwise sum of its inputs (any number), like ``x0 + x1 + ...`` in PyTorch.

    The sum passes the upstream gradient unchanged to every input: dL/dx_i = dy. With two
    inputs this is the join of a residual connection (He et al., 2016, arXiv:1512.03385);
    ``Residual`` is the same join for a block and its shortcut.

    Shape:
        - Inputs: any shape, the same for every input (no broadcasting).
        - Output: that shape.

    Example:
        >>> import numpy as np
        >>> add = Add()
        >>> add.forward(np.ones((2, 3)), np.full((2, 3), 2.0), np.full((2, 3), 3.0))[0]
        array([6., 6., 6.])
        >>> len(add.backward(np.ones((2, 3))))
        3
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.Add", onnx_ops=("Add", "Sum"))

    def __init__(self) -> None:
        super().__init__()

    def output_shape(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> tuple[int, ...]:
        shapes = self._check_shapes([input_shape, *more])
        for i, shape in enumerate(shapes[1:], start=1):
            if shape != shapes[0]:
                raise ShapeError(
                    f"Add: input {i} must have the shape of input 0 (no broadcasting). "
                    f"Received: input 0 shape {shapes[0]}, input {i} shape {shape}"
                )
        return shapes[0]

    def forward(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        self.output_shape(*self._shapes((x, *more)))
        self._cache = len(more) + 1
        y = x
        for xi in more:
            y = add(y, xi)  # left to right, as x0 + x1 + ... in PyTorch; laid out like x0
        return y.copy(order="K") if y is x else y  # a new array even for one input

    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        count = self._cached()
        return (dy,) * count  # d(x0 + x1 + ...)/dx_i = 1: every input gets dy itself

    def flops(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> int:
        """One add per output element for each input after the first."""
        return len(more) * math.prod(input_shape[1:])
