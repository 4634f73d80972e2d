"""Confusion matrices as text, and a summary of the ones too large to show cell by cell.

A matrix of at most ``LARGE`` classes is printed whole, with row and column labels
(``confusion_table``). A larger one (1000 classes: a million cells, 6 MB of text, a minute
for a browser to lay out) is summarized by ``cnnlab evaluate`` and the dashboard: the most
frequent confusions (``top_confusions``), the spread of per-class accuracy
(``per_class_summary``) and a heatmap small enough to send (``heatmap_png``).
``metrics.json`` and ``cnnlab evaluate --json`` keep the full matrix.

NumPy only; ``heatmap_png`` needs Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Above this many classes a confusion matrix is summarized instead of shown cell by cell.
LARGE = 30
#: How many confusions (true -> predicted pairs) a summary lists.
TOP = 20
#: How many of the least accurate classes a summary names.
WORST = 10
#: The heatmap image is at most this many pixels on a side.
HEATMAP_SIDE = 500


def _matrix(cm: Any, classes: Sequence[str]) -> np.ndarray:
    matrix = np.asarray(cm, dtype=np.int64)  # (K, K)
    k = len(classes)
    if matrix.shape != (k, k):
        raise ValueError(
            f"confusion matrix must be ({k}, {k}) for {k} classes. Received: shape {matrix.shape}"
        )
    return matrix


def is_large(classes: Sequence[str]) -> bool:
    """Whether a matrix of these classes is summarized rather than shown whole."""
    return len(classes) > LARGE


def confusion_table(cm: Any, classes: Sequence[str], indent: str = "  ") -> list[str]:
    """The whole matrix as text lines: a header of predicted classes, one row per true class.

    Names are cut to the column width (at most 8 characters, at least the widest count).

    Example:
        >>> print("\\n".join(confusion_table([[5, 1], [2, 17]], ["cat", "dog"])))
                      cat   dog
                 cat     5     1
                 dog     2    17
    """
    matrix = _matrix(cm, classes)
    names = [str(c) for c in classes]
    width = max(5, len(str(int(matrix.max(initial=0)))), min(8, max((len(n) for n in names), default=0)))
    head = f"{indent}{'':>12} " + " ".join(f"{n[:width]:>{width}}" for n in names)
    rows = [
        f"{indent}{name[:12]:>12} " + " ".join(f"{int(v):{width}d}" for v in row)
        for name, row in zip(names, matrix, strict=True)
    ]
    return [head, *rows]


def top_confusions(cm: Any, classes: Sequence[str], n: int = TOP) -> list[dict[str, Any]]:
    """The ``n`` most frequent mistakes, most frequent first (ties: matrix order).

    Each is ``{"true", "predicted", "count", "share"}``; ``share`` is the part of the true
    class's test images that went to ``predicted``. Pairs never confused are left out.

    Example:
        >>> for pair in top_confusions([[5, 1, 0], [4, 6, 0], [0, 0, 3]], ["a", "b", "c"]):
        ...     print(pair)
        {'true': 'b', 'predicted': 'a', 'count': 4, 'share': 0.4}
        {'true': 'a', 'predicted': 'b', 'count': 1, 'share': 0.1667}
    """
    matrix = _matrix(cm, classes)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()  # (K*K,)
    n = max(0, min(n, int(np.count_nonzero(flat))))
    if n == 0:
        return []
    cut = np.partition(flat, flat.size - n)[flat.size - n]  # the n-th largest count
    above, tied = np.flatnonzero(flat > cut), np.flatnonzero(flat == cut)  # each in matrix order
    pick = np.concatenate([above, tied[: n - above.size]])
    pick = pick[np.argsort(-flat[pick], kind="stable")]  # by count, ties in matrix order
    totals = matrix.sum(axis=1)  # (K,)
    out = []
    for index in pick:
        i, j = divmod(int(index), len(classes))
        count = int(off[i, j])
        share = round(count / max(int(totals[i]), 1), 4)
        out.append({"true": str(classes[i]), "predicted": str(classes[j]), "count": count, "share": share})
    return out


def per_class_summary(cm: Any, classes: Sequence[str], worst: int = WORST) -> dict[str, Any]:
    """The spread of per-class accuracy (recall) over the classes that have test images.

    Returns ``{"classes", "with_images", "mean", "median", "min", "max", "perfect", "zero",
    "worst"}``; ``worst`` lists ``{"class", "accuracy", "images"}``, least accurate first.

    Example:
        >>> s = per_class_summary([[5, 1], [2, 2]], ["cat", "dog"], worst=1)
        >>> s["mean"], s["worst"]
        (0.6667, [{'class': 'dog', 'accuracy': 0.5, 'images': 4}])
    """
    matrix = _matrix(cm, classes)
    totals = matrix.sum(axis=1)  # (K,)
    has = np.flatnonzero(totals > 0)
    recall = np.diagonal(matrix)[has] / totals[has]  # (K',)
    order = has[np.argsort(recall, kind="stable")][:worst]
    stats = (
        {"mean": recall.mean(), "median": np.median(recall), "min": recall.min(), "max": recall.max()}
        if has.size
        else dict.fromkeys(("mean", "median", "min", "max"), 0.0)
    )
    return {
        "classes": len(classes),
        "with_images": int(has.size),
        **{key: round(float(value), 4) for key, value in stats.items()},
        "perfect": int(np.sum(recall == 1.0)),
        "zero": int(np.sum(recall == 0.0)),
        "worst": [
            {
                "class": str(classes[i]),
                "accuracy": round(float(matrix[i, i] / totals[i]), 4),
                "images": int(totals[i]),
            }
            for i in order
        ],
    }


def summary_lines(cm: Any, classes: Sequence[str], top: int = TOP, worst: int = WORST) -> list[str]:
    """The text ``cnnlab evaluate`` prints for a large matrix (``is_large``) instead of the cells.

    Example:
        >>> print("\\n".join(summary_lines([[5, 1], [2, 2]], ["cat", "dog"])))
        per-class accuracy over 2 classes: mean 0.667, median 0.667, min 0.500, max 0.833 (0 at 100%, 0 at 0%)
          least accurate: dog 0.500 (4 images), cat 0.833 (6 images)
        top 2 confusions (true -> predicted: count, share of the true class):
                   dog -> cat           2  50.0%
                   cat -> dog           1  16.7%
    """
    s = per_class_summary(cm, classes, worst)
    missing = s["classes"] - s["with_images"]
    lines = [
        f"per-class accuracy over {s['with_images']} classes: mean {s['mean']:.3f}, median "
        f"{s['median']:.3f}, min {s['min']:.3f}, max {s['max']:.3f} ({s['perfect']} at 100%, "
        f"{s['zero']} at 0%)" + (f"; {missing} classes have no test images" if missing else ""),
        "  least accurate: "
        + ", ".join(f"{w['class']} {w['accuracy']:.3f} ({w['images']} images)" for w in s["worst"]),
    ]
    pairs = top_confusions(cm, classes, top)
    lines.append(f"top {len(pairs)} confusions (true -> predicted: count, share of the true class):")
    for p in pairs:
        lines.append(f"  {p['true'][:20]:>20} -> {p['predicted'][:20]:<20} {p['count']:>6} {p['share']:6.1%}")
    return lines


def heatmap_png(cm: Any, classes: Sequence[str], side: int = HEATMAP_SIDE) -> bytes:
    """A grayscale PNG of the row-normalized matrix (white 0, black 1), at most ``side`` pixels.

    Larger matrices are shrunk to one pixel per square block of ``b = ceil(K / side)``
    classes, showing the block's largest share, so a lone confusion stays visible.
    """
    from PIL import Image

    matrix = _matrix(cm, classes).astype(np.float64)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)  # (K, K)
    k = len(classes)
    b = max(1, -(-k // side))
    padded = np.zeros((-(-k // b) * b,) * 2)
    padded[:k, :k] = share
    m = padded.shape[0] // b
    blocks = padded.reshape(m, b, m, b).max(axis=(1, 3))  # (m, m): the strongest cell of a block
    pixels = (255 * (1.0 - np.sqrt(blocks))).round().astype(np.uint8)  # sqrt: small shares show
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
