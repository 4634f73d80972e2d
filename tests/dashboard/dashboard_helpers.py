"""Helpers shared by the dashboard tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def predict_path_probabilities(run_dir, image_file) -> np.ndarray:
    """What `cnnlab predict RUN IMAGE` computes, step for step (cli/predict_cmd.py)."""
    from cnnlab.cli.common import load_image
    from cnnlab.functional.activations import softmax
    from cnnlab.train.runs.trained_model import load_model, normalize

    model, extra = load_model(str(run_dir))
    channels, height, width = extra.get("input_shape") or (1, 28, 28)
    x = np.stack([load_image(str(image_file), channels, (height, width))])  # (1, C, H, W)
    return softmax(model.predict(normalize(x, extra)).astype(np.float64))[0]  # (K,)


def big_run(root: Path, k: int = 1000) -> Path:
    """A finished run folder of ``k`` classes: 3 test images each, some confused."""
    run = root / "big"
    run.mkdir(parents=True)
    classes = [f"n{i:08d}" for i in range(k)]
    cm = np.zeros((k, k), dtype=np.int64)
    cm[np.arange(k), np.arange(k)] = 3
    cm[np.arange(0, k, 7), np.arange(0, k, 7)] = 1
    cm[np.arange(0, k, 7), (np.arange(0, k, 7) + 1) % k] = 2  # every 7th class mostly confused
    recall = np.diag(cm) / cm.sum(axis=1)
    per_class = {
        c: {"precision": 0.5, "recall": float(r), "f1": 0.5, "support": 3.0}
        for c, r in zip(classes, recall, strict=True)
    }
    metrics = {"test_accuracy": float(np.trace(cm) / cm.sum()), "test_loss": 1.0, "per_class": per_class,
               "confusion_matrix": cm.tolist()}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text(json.dumps({"data": "imagenet-ish", "model": "small", "epochs": 1}))
    (run / "history.csv").write_text("epoch,train_loss,val_accuracy\n1,2.0,1.0\n")
    return run
