"""Helpers shared by the commands: finding a model file, its input shape and class names, user images."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.cli.notices import note
from cnnlab.data.images import read_image
from cnnlab.data.loader import Normalizer
from cnnlab.errors import CnnlabError
from cnnlab.io import load_with_extra
from cnnlab.train.runs.files import CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, MODEL_FILE
from cnnlab.train.runs.runlock import RunFolderLocked, check_free

#: Square sizes tried when a model file does not store its input shape.
MAX_INFERRED_SIZE = 512
#: Preferred among several sizes that fit: MNIST, CIFAR, digits, then usual sizes.
COMMON_SIZES = (28, 32, 8, 64, 96, 128, 224, 16)


def resolve_model_path(path: str) -> Path:
    """A run folder (its ``model.npz``) or a model file."""
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL_FILE).exists() and (p / CHECKPOINT_FILE).exists():
            raise CnnlabError(_unfinished_run(p))
        p = p / MODEL_FILE
    if not p.exists():
        raise FileNotFoundError(f"no model at {p} (give a run folder or a .npz/.safetensors model file)")
    return p


def _unfinished_run(run: Path) -> str:
    """Why run folder ``run`` has a checkpoint but no model.npz yet, and what to do."""
    try:
        epochs = max(0, len((run / HISTORY_FILE).read_text(encoding="utf-8").splitlines()) - 1)
    except OSError:
        epochs = 0
    try:
        check_free(run)
    except RunFolderLocked:
        return (
            f"{run} is still training ({epochs} epoch{'s' * (epochs != 1)} done): its {MODEL_FILE} is "
            "written when the run ends or is stopped with Ctrl-C"
        )
    return (
        f"{run} has no {MODEL_FILE}: its training was killed after {epochs} epoch{'s' * (epochs != 1)} "
        f"(saved in {CHECKPOINT_FILE}). Finish it with: cnnlab train --resume {run}"
    )


def load_model(path: str) -> tuple[Any, dict[str, Any]]:
    return load_with_extra(resolve_model_path(path))


def run_config(path: str) -> dict[str, Any] | None:
    """The ``config.json`` of the run a model belongs to (beside ``model.npz``), or None."""
    import json

    config = resolve_model_path(path).parent / CONFIG_FILE
    try:
        values = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def normalize(x: np.ndarray, extra: dict[str, Any]) -> np.ndarray:
    """Apply the training run's per-channel normalization stored with the model."""
    state = extra.get("normalization")
    return Normalizer.from_state(state)(x) if state else x


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
    try:
        pixels, converted = read_image(path, channels, size)
    except ImportError as exc:
        raise CnnlabError(str(exc)) from None
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise CnnlabError(f"cannot read image {path}: {exc}") from None
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
