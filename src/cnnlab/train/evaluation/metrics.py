"""Classification metrics: accuracy, top-k accuracy, confusion matrix, precision/recall/F1.

All vectorized with NumPy (``np.bincount`` builds the confusion matrix in one pass).
Labels are integer class indices in ``[0, num_classes)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int


def _labels(where: str, y: np.ndarray, n: int | None = None) -> np.ndarray:
    """``y`` as a 1-D int array: class indices, or the argmax of one-hot/score rows."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=1)  # (N,) one-hot or scores -> indices
    if y.ndim != 1:
        raise ShapeError(f"{where}: labels must have shape (N,) or (N, C). Received: shape {y.shape}")
    if n is not None and len(y) != n:
        raise ShapeError(f"{where}: labels must have {n} entries (one per example). Received: {len(y)}")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            return y.astype(np.int64)
        raise arg_error(where, "y", "integer class indices", f"array of dtype {y.dtype}")
    return y


def accuracy(logits_or_pred: np.ndarray, y: np.ndarray) -> float:
    """Fraction of examples whose predicted class equals the label.

    Args:
        logits_or_pred: scores ``(N, C)`` (the argmax is the prediction) or predicted
            classes ``(N,)``.
        y: true classes ``(N,)`` (or one-hot ``(N, C)``).

    Example:
        >>> import numpy as np
        >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), np.array([0, 1, 1]))
        0.6666666666666666
    """
    pred = _labels("accuracy", logits_or_pred)
    if len(pred) == 0:
        raise arg_error("accuracy", "y", "at least one example", "an empty array")
    y = _labels("accuracy", y, len(pred))
    return float(np.mean(pred == y))


def top_k_accuracy(logits: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores.

    Ranks follow a stable descending sort: classes tied with the true class count ahead
    of it only when their index is lower, so ``k=1`` agrees with ``argmax`` exactly.
    A ``k`` at or above the number of classes gives 1.0.

    Args:
        logits: scores ``(N, C)``.
        y: true classes ``(N,)``.
        k: how many top classes count as a hit (positive int).

    Example:
        >>> import numpy as np
        >>> scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
        >>> top_k_accuracy(scores, np.array([2, 2]), k=2)
        0.5
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ShapeError(f"top_k_accuracy: logits must have shape (N, C). Received: shape {logits.shape}")
    check_int("top_k_accuracy", "k", k)
    N, C = logits.shape
    if N == 0:
        raise arg_error("top_k_accuracy", "logits", "at least one example", "an empty array")
    y = _labels("top_k_accuracy", y, N)
    _check_range("top_k_accuracy", y, C)
    true_score = logits[np.arange(N), y][:, None]  # (N, 1)
    higher = (logits > true_score).sum(axis=1)  # (N,) classes strictly ahead
    tied_before = ((logits == true_score) & (np.arange(C) < y[:, None])).sum(axis=1)  # (N,)
    return float(np.mean(higher + tied_before < k))


def _check_range(where: str, y: np.ndarray, num_classes: int) -> None:
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        raise arg_error(where, "labels", f"class indices in [0, {num_classes})", int(y[bad][0]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of examples of true class ``i`` predicted as class ``j``.

    Args:
        y_true: true classes ``(N,)``.
        y_pred: predicted classes ``(N,)`` (or scores ``(N, C)``: their argmax).
        num_classes: number of classes ``C``.

    Shape:
        Output: ``(C, C)`` int64; rows are true classes, columns predicted ones.

    Example:
        >>> import numpy as np
        >>> confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2]), 3)
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    check_int("confusion_matrix", "num_classes", num_classes)
    t = _labels("confusion_matrix", y_true)
    p = _labels("confusion_matrix", y_pred, len(t))
    _check_range("confusion_matrix", t, num_classes)
    _check_range("confusion_matrix", p, num_classes)
    # Each (true, pred) pair is one cell index true * C + pred; bincount counts them all.
    flat = t.astype(np.int64) * num_classes + p  # (N,)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every class from a confusion matrix.

    ``precision = TP / predicted``, ``recall = TP / support``, ``f1`` their harmonic mean;
    each is 0 where its denominator is 0 (sklearn's ``zero_division=0``), without warnings.

    Example:
        >>> import numpy as np
        >>> m = per_class_metrics(np.array([[3, 1], [0, 0]]))
        >>> m["precision"], m["recall"], m["support"]
        (array([1., 0.]), array([0.75, 0.  ]), array([4, 0]))
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ShapeError(f"per_class_metrics: cm must have shape (C, C). Received: shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)  # (C,)
    predicted = cm.sum(axis=0)  # (C,) column sums
    support = cm.sum(axis=1)  # (C,) row sums

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    precision = ratio(tp, predicted)
    recall = ratio(tp, support)
    f1 = ratio(2.0 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_report(cm: np.ndarray, class_names: Sequence[str] | None = None, digits: int = 3) -> str:
    """A readable table of per-class precision/recall/F1/support, accuracy and averages.

    Args:
        cm: confusion matrix ``(C, C)`` (rows true, columns predicted).
        class_names: ``C`` names (default ``"0"``, ``"1"``, ...).
        digits: decimals shown.

    Example:
        >>> import numpy as np
        >>> print(classification_report(np.array([[3, 1], [0, 2]]), ["cat", "dog"]))
                      precision  recall  f1-score  support
                 cat      1.000   0.750     0.857        4
                 dog      0.667   1.000     0.800        2
        <BLANKLINE>
            accuracy                        0.833        6
           macro avg      0.833   0.875     0.829        6
        weighted avg      0.889   0.833     0.838        6
    """
    m = per_class_metrics(cm)
    C = len(m["support"])
    names = [str(i) for i in range(C)] if class_names is None else [str(n) for n in class_names]
    if len(names) != C:
        raise arg_error("classification_report", "class_names", f"{C} names (one per class)", list(names))
    total = int(m["support"].sum())
    acc = float(np.trace(np.asarray(cm))) / total if total else 0.0
    weights = m["support"] / total if total else np.zeros(C)
    width = max(12, *(len(n) for n in names))
    head = f"{'':>{width}}  precision  recall  f1-score  support"

    def row(label: str, p: float | None, r: float | None, f: float, s: int) -> str:
        cells = [f"{v:.{digits}f}" if v is not None else "" for v in (p, r)]
        return f"{label:>{width}}  {cells[0]:>9}  {cells[1]:>6}  {f:>8.{digits}f}  {s:>7}"

    lines = [head]
    for i, name in enumerate(names):
        lines.append(row(name, m["precision"][i], m["recall"][i], m["f1"][i], int(m["support"][i])))
    lines.append("")
    lines.append(row("accuracy", None, None, acc, total))
    lines.append(row("macro avg", m["precision"].mean(), m["recall"].mean(), m["f1"].mean(), total))
    lines.append(
        row("weighted avg", weights @ m["precision"], weights @ m["recall"], weights @ m["f1"], total)
    )
    return "\n".join(lines)
