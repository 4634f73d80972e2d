"""Helpers shared by the dashboard tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import io
import os

import numpy as np

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def predict_path_probabilities(run_dir, image_file) -> np.ndarray:
    """What `cnnlab predict RUN IMAGE` computes, step for step (cli/predict_cmd.py)."""
    from cnnlab.cli.common import load_image, load_model, normalize
    from cnnlab.functional.activations import softmax

    model, extra = load_model(str(run_dir))
    channels, height, width = extra.get("input_shape") or (1, 28, 28)
    x = np.stack([load_image(str(image_file), channels, (height, width))])  # (1, C, H, W)
    return softmax(model.predict(normalize(x, extra)).astype(np.float64))[0]  # (K,)
