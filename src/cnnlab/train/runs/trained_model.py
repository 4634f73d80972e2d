"""A trained model as the commands and the dashboard use it.

Found in a run folder (its ``model.npz``; a run still training or killed before it wrote
one is said so) or given as a model file; loaded with its ``extra`` (class names, input
shape, normalization); its run's ``config.json``; inputs normalized as in training; and a
user's image read for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.images import Converted, read_image
from cnnlab.data.loader import Normalizer
from cnnlab.errors import CnnlabError
from cnnlab.io import load_with_extra
from cnnlab.train.runs.files import CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, MODEL_FILE
from cnnlab.train.runs.runlock import RunFolderLocked, check_free


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
    """``(model, extra)`` of a run folder or a model file."""
    return load_with_extra(resolve_model_path(path))


def run_config(path: str) -> dict[str, Any] | None:
    """The ``config.json`` of the run a model belongs to (beside ``model.npz``), or None."""
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


def read_input_image(path: str, channels: int, size: tuple[int, int] | None) -> tuple[np.ndarray, Converted]:
    """Read any PNG/JPEG as a ``(C, H, W)`` float32 array in [0, 1] for the model.

    Returns the pixels and what the conversion did (``data.images.read_image``); a file
    that cannot be read is a ``CnnlabError`` naming it.
    """
    try:
        return read_image(path, channels, size)
    except ImportError as exc:
        raise CnnlabError(str(exc)) from None
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise CnnlabError(f"cannot read image {path}: {exc}") from None
