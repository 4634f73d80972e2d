"""Helpers shared by the commands: finding a model file, loading user images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError


def resolve_model_path(path: str) -> Path:
    """A run folder (its ``model.npz``) or a model file."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.npz"
    if not p.exists():
        raise FileNotFoundError(f"no model at {p} (give a run folder or a .npz/.safetensors model file)")
    return p


def load_model(path: str) -> tuple[Any, dict[str, Any]]:
    from cnnlab.io import load_with_extra

    return load_with_extra(resolve_model_path(path))


def normalize(x: np.ndarray, extra: dict[str, Any]) -> np.ndarray:
    """Apply the training run's per-channel normalization stored with the model."""
    from cnnlab.data.loader import Normalizer

    state = extra.get("normalization")
    return Normalizer.from_state(state)(x) if state else x


def load_image(path: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Read a PNG/JPEG as a (C, H, W) float32 array in [0, 1], resized to ``size``."""
    try:
        from PIL import Image
    except ImportError:
        raise CnnlabError("reading images needs Pillow: pip install pillow") from None
    try:
        with Image.open(path) as opened:
            img = opened.convert("L" if channels == 1 else "RGB")
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except OSError as exc:
        raise CnnlabError(f"cannot read image {path}: {exc}") from None
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)  # (C, H, W)
