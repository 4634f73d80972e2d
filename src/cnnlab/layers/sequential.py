"""Sequential: the forward phase runs layers in order, the backward phase in reverse."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec
from cnnlab.layers.freeze import leading_frozen


class Sequential(Layer):
    """A stack of layers applied one after another.

    ``backward`` applies the chain rule layer by layer in reverse:
    dL/dx_i = backward_i(dL/dx_{i+1}). Nothing else happens here: speed-ups that merge
    layers are a separate, explicit pass (``cnnlab.layers.fuse``, which ``fit`` applies).

    Args:
        *layers: the layers, in forward order.

    Shape:
        - Input: whatever the first layer takes.
        - Output: whatever the last layer returns.

    Example:
        >>> import numpy as np, cnnlab
        >>> net = cnnlab.Sequential(cnnlab.Dense(4, 3, rng=0), cnnlab.ReLU())
        >>> net.forward(np.ones((2, 4), dtype=np.float32)).shape
        (2, 3)
        >>> list(net.state_dict())
        ['0.weight', '0.bias']
    """

    torch = TorchSpec("torch.nn.Sequential", star_arg="layers")

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise arg_error("Sequential", f"layers[{i}]", "a cnnlab Layer", layer)
        self.layers: list[Layer] = list(layers)

    def torch_args(self) -> dict[str, Any]:
        return {"layers": list(self.layers)}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"layers": list(module)}

    def children(self) -> dict[str, Layer]:
        return {str(i): layer for i, layer in enumerate(self.layers)}

    def input_layers(self) -> list[Layer]:
        """The first layer's (the one that reads the input); with frozen layers, those of the
        first layer that trains (nothing before it needs a gradient; ``cnnlab.layers.freeze``)."""
        first = leading_frozen(self.layers)
        return self.layers[first].input_layers() if first < len(self.layers) else []

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        self._cache = np.shape(x)  # backward's dy must have this shape
        return x

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # type: ignore[override]
        """Chain rule in reverse. Returns None if a layer returns None or has
        ``needs_input_grad = False`` (a first Conv2D skips dL/dx; the layers before it, e.g.
        frozen ones, get no gradient and are not visited).

        Raises:
            ShapeError: ``dy`` does not have the shape of the last forward output (issue 23
                item 8: a matmul error from deep inside the last layer before).
        """
        if self._cache is not None and np.shape(dy) != self._cache:
            last = self.layers[-1].name if self.layers else "Sequential"
            raise ShapeError(
                f"Sequential: the gradient passed to backward() must have the shape of the last "
                f"forward output, {self._cache} (the output of its last layer, {last}). "
                f"Received: shape {np.shape(dy)}"
            )
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None or not layer.needs_input_grad:
                return None
        return dy

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Forward in eval mode, in batches, without changing the training flag for good."""
        return predict_in_batches(self, x, batch_size)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """The sum of the layers' FLOPs, each for the shape that reaches it."""
        total, shape = 0, tuple(input_shape)
        for layer in self.layers:
            total += layer.flops(shape)
            shape = layer.output_shape(shape)
        return total

    def get_config(self) -> dict[str, Any]:
        return {"layers": list(self.layers)}

    def __repr__(self) -> str:
        lines = [f"  ({i}): {layer!r}".replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def summary(self, input_shape: tuple[int, ...], print_fn: Any = print) -> list[dict[str, Any]]:
        """Print and return a table: layer, output shape, parameters, FLOPs, size formula.

        Args:
            input_shape: one example's shape, ``(C, H, W)`` or ``(F,)`` (no batch axis).
            print_fn: where the table goes (``None`` to print nothing).

        Returns:
            One dict per layer with keys ``layer``, ``output_shape``, ``params``, ``flops``
            (forward, one example; see ``Layer.flops``) and ``formula``.
        """
        shape: tuple[int, ...] = (1, *input_shape)
        rows = []
        for i, layer in enumerate(self.layers):
            try:
                formula = layer.formula(shape)
                out = layer.output_shape(shape)
            except ShapeError as exc:
                raise ShapeError(f"layer {i} ({layer!r}): {exc}") from None
            count = sum(int(np.prod(p.value.shape)) for p in layer.parameters())
            rows.append(
                {
                    "layer": f"{i}: {_one_line(layer)}",
                    "output_shape": out[1:],
                    "params": count,
                    "flops": layer.flops(shape),
                    "formula": formula,
                }
            )
            shape = out
        if print_fn is not None:
            print_fn(format_summary(rows, input_shape))
        return rows


def predict_in_batches(model: Layer, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``model.forward`` in eval mode on batches of ``x``, concatenated; the training flag is
    restored afterwards (``Sequential.predict`` and ``Graph.predict``)."""
    was_training = model.training
    model.eval()
    try:
        outs = [model.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(outs) if outs else np.empty((0,))


def _one_line(layer: Layer) -> str:
    """A layer's repr on one line; a container as Name(child, child), e.g. for summary rows."""
    children = layer.children()
    if not children:
        return repr(layer)
    return f"{layer.name}({', '.join(_one_line(child) for child in children.values())})"


def format_summary(rows: list[dict[str, Any]], input_shape: tuple[int, ...]) -> str:
    """Render summary rows as a plain-text table."""
    head = ("layer", "output shape", "params", "FLOPs", "size formula")
    body = [
        (
            r["layer"],
            "x".join(map(str, r["output_shape"])),
            f"{r['params']:,}",
            _human(r.get("flops", 0)),
            r["formula"] or "",
        )
        for r in rows
    ]
    widths = [max(len(row[c]) for row in [head, *body]) for c in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    total = sum(r["params"] for r in rows)
    lines = [
        f"input: {'x'.join(map(str, input_shape))}",
        fmt.format(*head).rstrip(),
        fmt.format(*("-" * w for w in widths)),
    ]
    lines += [fmt.format(*row).rstrip() for row in body]
    lines.append(f"total parameters: {total:,}")
    flops = sum(r.get("flops", 0) for r in rows)
    lines.append(f"forward FLOPs per example: {_human(flops)} ({flops:,}); a train step is about 3x")
    return "\n".join(lines)


def _human(flops: int) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.3g}{unit}"
    return str(flops)
