"""Forward FLOPs of a layer for one example: how depth and width change the cost.

A multiply-add counts as 2 FLOPs. Conv2D: 2 * C_in * KH * KW * C_out * H_out * W_out (+ one
add per output for the bias); Dense: 2 * in * out (+ out). Pooling counts one op per
window element, BatchNorm two per element (scale and shift, eval form), elementwise
activations and Maxout one per input element; Flatten and Dropout (eval) are free. A
Residual adds its branches plus one add per output element.
"""

from __future__ import annotations

import math
from typing import Any


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:])  # per example: drop the batch axis


def layer_flops(layer: Any, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs of ``layer`` for one example of ``input_shape`` (batch axis included)."""
    kind = type(layer).__name__
    out_shape = layer.output_shape(input_shape)
    n_in, n_out = _numel(input_shape), _numel(out_shape)
    if kind == "Conv2D":
        kh, kw = layer.params["weight"].shape[2:]
        flops = 2 * input_shape[1] * kh * kw * n_out
        return flops + (n_out if "bias" in layer.params else 0)
    if kind == "Dense":
        in_f, out_f = input_shape[1], out_shape[1]
        return 2 * in_f * out_f + (out_f if "bias" in layer.params else 0)
    if kind in ("MaxPool2D", "AvgPool2D"):
        k = layer.kernel_size if isinstance(layer.kernel_size, tuple) else (layer.kernel_size,) * 2
        return n_out * k[0] * k[1]
    if kind in ("BatchNorm1D", "BatchNorm2D"):
        return 2 * n_in
    if kind in ("Flatten", "Dropout"):
        return 0
    if kind == "Sequential":
        total, shape = 0, input_shape
        for child in layer.layers:
            total += layer_flops(child, shape)
            shape = child.output_shape(shape)
        return total
    if kind == "Residual":
        children = layer.children()
        total = layer_flops(children["block"], input_shape) + n_out
        if "shortcut" in children:
            total += layer_flops(children["shortcut"], input_shape)
        return total
    return n_in  # activations, Maxout, Softmax, GlobalAvgPool2D: about one op per element
