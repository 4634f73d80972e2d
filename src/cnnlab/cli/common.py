"""Helpers shared by the commands: a model's input shape and class names, user images with notes.

Finding, loading and normalizing for a trained model: ``cnnlab.train.runs.trained_model``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

from cnnlab.cli.notices import note
from cnnlab.errors import CnnlabError
from cnnlab.train.runs.trained_model import read_input_image

#: Square sizes tried when a model file does not store its input shape.
MAX_INFERRED_SIZE = 512
#: Preferred among several sizes that fit: MNIST, CIFAR, digits, then usual sizes.
COMMON_SIZES = (28, 32, 8, 64, 96, 128, 224, 16)


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (the option's name comes with argparse's message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int (1 or more). Received: {text!r}")
    return value


def model_input_shape(model: Any, extra: dict[str, Any]) -> tuple[int, int | None, int | None]:
    """``(C, H, W)`` the model takes: stored with the model, else worked out from its layers.

    A model saved with ``cnnlab.save`` and no ``extra`` has no stored shape: C comes from its
    first Conv2D / BatchNorm2D (or a Dense right after Flatten), and (H, W) is the one
    square size up to 512 for which every layer's shape fits (a common dataset size such as
    28 or 32 when pooling lets several fit; a note says which). A model that takes any size
    (global average pooling) gives ``(C, None, None)``.
    """
    stored = extra.get("input_shape")
    if stored:
        channels, height, width = (int(v) for v in stored)
        return channels, height, width
    first_weighted = next(
        (
            layer
            for _, layer in model.named_layers()
            if hasattr(layer, "in_channels")
            or hasattr(layer, "in_features")
            or hasattr(layer, "num_features")
        ),
        None,
    )
    if first_weighted is None:
        raise CnnlabError(
            "the model file does not store its input shape and has no layer that tells it; "
            "save it with extra={'input_shape': [C, H, W]}"
        )
    channel_options = [
        int(getattr(first_weighted, "in_channels", 0) or getattr(first_weighted, "num_features", 0))
    ]
    if channel_options == [0]:  # an MLP: Flatten then Dense(C*H*W, ...)
        channel_options = [1, 3]
    for channels in channel_options:
        if _fits(model, (1, channels, MAX_INFERRED_SIZE, MAX_INFERRED_SIZE)):
            return channels, None, None  # takes any size (e.g. global average pooling)
        fits = [s for s in range(1, MAX_INFERRED_SIZE) if _fits(model, (1, channels, s, s))]
        if fits:
            # Pooling floors sizes (24..31 all fit a 28x28 vgg): a common dataset size, else the smallest.
            size = next((s for s in COMMON_SIZES if s in fits), fits[0])
            others = f" ({fits[0]}..{fits[-1]} fit)" if len(fits) > 1 else ""
            note(f"the model file stores no input shape: using {channels}x{size}x{size}{others}")
            return channels, size, size
    raise CnnlabError(
        "the model file does not store its input shape and no square image size up to "
        f"{MAX_INFERRED_SIZE} fits its layers; save it with extra={{'input_shape': [C, H, W]}}"
    )


def _fits(model: Any, shape: tuple[int, ...]) -> bool:
    try:
        model.output_shape(shape)
    except (ValueError, TypeError, ZeroDivisionError):
        return False
    return True


def class_names(extra: dict[str, Any], num_classes: int) -> list[str]:
    """The model's class names; class indices ("0", "1", ...) where the file has none (or too few)."""
    names = [str(c) for c in extra.get("classes") or []]
    return names[:num_classes] + [str(i) for i in range(len(names), num_classes)]


def load_image(path: str, channels: int, size: tuple[int, int] | None, report: bool = True) -> np.ndarray:
    """Read any PNG/JPEG as a (C, H, W) float32 array in [0, 1] for the model.

    Every conversion that loses information (colour dropped, transparency flattened, size
    reduced) is reported as one warning line naming the image; an enlarged image as one note.
    ``report=False`` says nothing (the dashboard shows the converted image instead).
    """
    pixels, converted = read_input_image(path, channels, size)
    shape = "x".join(str(s) for s in pixels.shape)
    source = f"{path} ({converted.mode}, {converted.size[0]}x{converted.size[1]})"
    if not report:
        return pixels
    if converted.lossy:
        warnings.warn(
            f"{source} converted to the model's input {shape}: " + ", ".join(converted.lossy),
            UserWarning,
            stacklevel=2,
        )
    elif converted.size != pixels.shape[1:]:
        note(f"{source} enlarged to the model's input {shape}")
    return pixels
