"""Run a model layer by layer to look inside: feature maps and penultimate-layer features.

Works on a ``Sequential`` (what the zoo and the config builder return) in eval mode, so
dropout is off and batch norm uses its running statistics, exactly as at prediction time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Layer type names whose output is a feature map worth drawing (the lecture's conv and
#: pooling stages); a container holding a conv (e.g. a residual block) counts as a conv.
MAP_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D", "Residual")


def layer_label(index: int, layer: Any) -> str:
    """A short one-line name for a layer, e.g. ``"0: Conv2D(1, 32, kernel_size=3)"``."""
    text = repr(layer) if not layer.children() else type(layer).__name__
    return f"{index}: {text.splitlines()[0]}"


def feature_maps(model: Any, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Outputs of every conv/pool layer for a batch ``x`` (eval mode).

    Args:
        model: a ``Sequential``.
        x: ``(N, C, H, W)`` normalized inputs.

    Returns:
        ``(label, output)`` pairs, output ``(N, C_out, H_out, W_out)``, in forward order.

    Example:
        >>> import numpy as np
        >>> from cnnlab.models import build_model
        >>> net = build_model("small", in_channels=1, input_size=(8, 8), num_classes=3, rng=0)
        >>> [(name, out.shape) for name, out in feature_maps(net, np.zeros((1, 1, 8, 8), np.float32))][1]
        ('2: MaxPool2D(2)', (1, 32, 4, 4))
    """
    maps = []
    with _eval(model):
        for i, layer in enumerate(_layers(model)):
            x = layer.forward(x)
            if type(layer).__name__ in MAP_LAYERS and x.ndim == 4:
                maps.append((layer_label(i, layer), x))
    return maps


def penultimate_features(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The input of the last layer with parameters (the classifier) for each example.

    This is the representation the network learned ("automatic feature extraction"): the
    classifier is only a linear map on it.

    Returns:
        ``(N, F)`` features (flattened when the layer's input has more axes).
    """
    layers = _layers(model)
    last = max((i for i, layer in enumerate(layers) if layer.parameters()), default=len(layers))
    outs = []
    with _eval(model):
        for start in range(0, len(x), batch_size):
            h = x[start : start + batch_size]
            for layer in layers[:last]:
                h = layer.forward(h)
            outs.append(h.reshape(len(h), -1))  # (B, F)
    return np.concatenate(outs) if outs else np.empty((0, 0), dtype=np.float32)


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
