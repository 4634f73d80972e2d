"""Evaluate a trained model on arrays: loss, accuracy, per-class metrics, confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_arrays(
    model: Any, x: np.ndarray, y: np.ndarray, classes: list[str], batch_size: int = 256
) -> dict[str, Any]:
    """Return JSON-ready metrics of ``model`` on ``(x, y)`` (eval mode, batched).

    Keys: ``test_accuracy`` (= ``accuracy``), ``test_loss``, ``top5_accuracy`` (when there
    are more than 5 classes), ``per_class`` (precision/recall/f1/support by class name) and
    ``confusion_matrix`` (rows: true class, columns: predicted).
    """
    from cnnlab.losses import SoftmaxCrossEntropy
    from cnnlab.train.metrics import confusion_matrix, per_class_metrics, top_k_accuracy

    logits = model.predict(x, batch_size=batch_size)  # (N, K)
    loss = SoftmaxCrossEntropy().forward(logits.astype(np.float64), y)
    pred = logits.argmax(axis=1)
    accuracy = float(np.mean(pred == y))
    cm = confusion_matrix(y, pred, len(classes))
    per_class = per_class_metrics(cm)
    result: dict[str, Any] = {
        "test_accuracy": accuracy,
        "accuracy": accuracy,
        "test_loss": float(loss),
        "num_examples": len(y),
    }
    if len(classes) > 5:
        result["top5_accuracy"] = float(top_k_accuracy(logits, y, k=5))
    result["per_class"] = {
        name: {key: float(per_class[key][i]) for key in ("precision", "recall", "f1", "support")}
        for i, name in enumerate(classes)
    }
    result["confusion_matrix"] = cm.tolist()
    return result
