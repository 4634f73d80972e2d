"""Evaluate a trained model on arrays: loss, accuracy, per-class metrics, confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.data.datasets import DATASETS, MIRROR_SAFE
from cnnlab.errors import arg_error
from cnnlab.functional.activations import softmax
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.train.evaluation.metrics import confusion_matrix, per_class_metrics, top_k_accuracy

#: Test-time augmentations: "flip" averages the class probabilities of each image and of
#: its left-right mirror (for models trained with ``--augment flip``).
TTA_MODES = ("none", "flip")


def predict_proba(model: Any, x: np.ndarray, tta: str = "none", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) of ``model`` on ``x`` (eval mode, batched).

    Shape:
        x: (N, C, H, W) -> (N, K), each row sums to 1.

    Example:
        >>> import cnnlab
        >>> net = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(4, 3, rng=0))
        >>> x = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
        >>> predict_proba(net, x, tta="flip").sum(axis=1)
        array([1., 1.])
    """
    return np.mean(_view_probabilities(model, x, tta, batch_size, "predict_proba"), axis=0)


@quiet_fp_method  # a diverged model's inf logits give NaN probabilities, not warnings
def _view_probabilities(model: Any, x: np.ndarray, tta: str, batch_size: int, where: str) -> list[np.ndarray]:
    """Softmax of the model's logits for each view of ``x``: the plain images first, then
    (``tta="flip"``) their mirrors along the width axis."""
    if tta not in TTA_MODES:
        raise arg_error(where, "tta", f"one of {', '.join(TTA_MODES)}", tta)
    views = [x] if tta == "none" else [x, x[..., ::-1]]
    return [softmax(model.predict(v, batch_size=batch_size).astype(np.float64)) for v in views]  # (N, K) each


def evaluate_arrays(
    model: Any, x: np.ndarray, y: np.ndarray, classes: list[str], batch_size: int = 256, tta: str = "none"
) -> dict[str, Any]:
    """Return JSON-ready metrics of ``model`` on ``(x, y)`` (eval mode, batched).

    Keys: ``test_accuracy`` (= ``accuracy``), ``test_loss`` (mean cross-entropy of the
    predicted probabilities), ``top5_accuracy`` (when there are more than 5 classes),
    ``per_class`` (precision/recall/f1/support by class name) and ``confusion_matrix`` (rows:
    true class, columns: predicted). With a test-time augmentation (``tta="flip"``) the
    metrics are those of the averaged probabilities; ``tta`` names it and
    ``accuracy_without_tta`` gives the plain model's accuracy beside it.
    """
    per_view = _view_probabilities(model, x, tta, batch_size, "evaluate")
    plain, probs = per_view[0], np.mean(per_view, axis=0)  # (N, K) each
    if probs.shape[1] < len(classes) or (len(y) and int(y.max()) >= probs.shape[1]):
        # issue 23 item 4: an `index 5 is out of bounds` from deep inside NumPy before
        raise ValueError(
            f"evaluate: the model has {probs.shape[1]} outputs per image, but the data has "
            f"{len(classes)} classes (labels up to {int(y.max()) if len(y) else 0}): the model was not "
            "trained for these classes"
        )
    loss = -np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], np.finfo(np.float64).tiny)))
    pred = probs.argmax(axis=1)
    accuracy = float(np.mean(pred == y))
    cm = confusion_matrix(y, pred, len(classes))
    per_class = per_class_metrics(cm)
    result: dict[str, Any] = {
        "test_accuracy": accuracy,
        "accuracy": accuracy,
        "test_loss": float(loss),
        "num_examples": len(y),
    }
    if tta != "none":
        result["tta"] = tta
        result["accuracy_without_tta"] = float(np.mean(plain.argmax(axis=1) == y))
    if len(classes) > 5:
        result["top5_accuracy"] = float(top_k_accuracy(probs, y, k=5))
    result["per_class"] = {
        name: {key: float(per_class[key][i]) for key in ("precision", "recall", "f1", "support")}
        for i, name in enumerate(classes)
    }
    result["confusion_matrix"] = cm.tolist()
    return result


def align_labels(
    y: np.ndarray, data_classes: list[str], model_classes: list[str] | None, num_outputs: int
) -> tuple[np.ndarray, list[str]]:
    """Labels ``y`` (indices into ``data_classes``) as indices into the model's classes, by name.

    A folder that holds some of the model's classes (``cat/`` and ``dog/`` of a 10-class
    model) has its own indices (0, 1); matching by name gives the model's (3, 5). Names the
    model does not know are refused. Without stored names (a model saved without
    ``extra``), classes are matched by index.

    Returns:
        ``(labels, classes)``: labels (N,) in ``range(len(classes))`` and the model's class names.

    Example:
        >>> align_labels(np.array([0, 1, 1]), ["cat", "dog"], ["ant", "cat", "dog"], 3)
        (array([1, 2, 2]), ['ant', 'cat', 'dog'])
    """
    if model_classes is None:
        if len(data_classes) > num_outputs:
            raise ValueError(
                f"evaluate: the data has {len(data_classes)} classes but the model has {num_outputs} "
                "outputs (and stores no class names to match them by)"
            )
        return y, list(data_classes) + [str(i) for i in range(len(data_classes), num_outputs)]
    model_classes = [str(c) for c in model_classes]
    unknown = [str(c) for c in data_classes if str(c) not in model_classes]
    if unknown:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise ValueError(
            f"evaluate: the data has classes the model was not trained on: {shown}. "
            f"The model's classes: {', '.join(model_classes)}"
        )
    mapping = np.array([model_classes.index(str(c)) for c in data_classes], dtype=np.int64)
    return mapping[y], model_classes


def tta_warning(
    tta: str, trained_augment: str | None, metrics: dict[str, Any], dataset: str | None = None
) -> str | None:
    """A one-line warning when flip TTA does not suit the model, else None.

    Flip TTA averages each image with its mirror: it helps a model trained with flipped
    images and can hurt one that never saw a mirrored image (mirrored digits are not digits).
    When the model was trained with flips and TTA still lowered the accuracy, the warning
    says what is left: the data's classes are not mirror-symmetric (issue 23 item 15:
    ``--recipe fashion --data digits`` was asked "was the model trained with --augment flip?").

    Args:
        tta: the test-time augmentation used.
        trained_augment: the run's ``augment`` setting, or None when unknown (a bare model file).
        metrics: ``evaluate_arrays``'s result (``accuracy`` and ``accuracy_without_tta``).
        dataset: the data's name or folder, named in the warning when given.
    """
    if tta != "flip":
        return None
    with_tta, without = metrics["accuracy"], metrics["accuracy_without_tta"]
    numbers = f"accuracy {with_tta:.4f} with flip TTA, {without:.4f} without"
    augments = [] if trained_augment is None else trained_augment.split(",")
    if trained_augment is not None and "flip" not in augments:
        return (
            f"--tta flip on a model trained without flipped images (augment={trained_augment}): "
            f"{numbers}; use --tta none, or train with --augment flip"
        )
    if with_tta >= without:
        return None
    if trained_augment is None:
        return f"flip TTA lowered the accuracy ({numbers}); was the model trained with --augment flip?"
    data = f"the classes of {dataset}" if dataset else "the data's classes"
    known = dataset is not None and dataset.lower() in DATASETS and dataset.lower() not in MIRROR_SAFE
    why = "a mirrored digit is not a digit" if known else "a mirrored image is not always the same class"
    rest = [a for a in augments if a != "flip"]
    return (
        f"flip TTA lowered the accuracy ({numbers}) although the model was trained with flipped "
        f"images (augment={trained_augment}): {data} are not mirror-symmetric ({why}). "
        f"Use --tta none, and --augment {','.join(rest) or 'none'} (without flip)"
    )
