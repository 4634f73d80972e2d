"""2-D projections of penultimate-layer features, coloured by class.

The lecture's "automatic feature extraction": the conv layers learn features in which the
classes separate, so a simple linear classifier on top suffices. PCA (NumPy, linear) shows
the directions of largest variance; t-SNE (scikit-learn, when installed) keeps
neighbourhoods and usually shows the clusters more clearly.

Some features cannot be projected: NaN values, too few images, or the same features for
every image (an untrained model, or one whose ReLUs all died). ``projection_problem`` says
why in words; ``tsne_2d`` refuses such features with that reason (scikit-learn's t-SNE
crashed the whole process on constant features: a segmentation fault, issue 23), and
``cnnlab plot`` skips the picture with the reason and still writes the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.viz.figure import new_figure, save

#: Pixel size of a projection PNG.
SIZE = (800, 700)
#: t-SNE needs its perplexity (at least 2) below the number of points: at least this many.
MIN_TSNE_POINTS = 5


class DegenerateFeatures(ValueError):
    """Features that cannot be projected; the message says why (``projection_problem``)."""


def projection_problem(features: np.ndarray, method: str = "PCA") -> str | None:
    """Why ``(N, F)`` features cannot be drawn with ``method`` ("PCA" or "t-SNE"), or None.

    Example:
        >>> import numpy as np
        >>> print(projection_problem(np.zeros((100, 128))))
        the features are the same for all 100 images (a model that gives every input the
        same features: untrained, or all its ReLUs are dead)
        >>> projection_problem(np.eye(3), "t-SNE")
        't-SNE needs at least 5 images; got 3'
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        return f"features must be 2-D (N, F); got shape {x.shape}"
    n = len(x)
    if n < 2 or x.shape[1] < 1:
        return f"a projection needs at least 2 images with at least 1 feature; got shape {x.shape}"
    finite = np.isfinite(x)
    if not finite.all():
        bad = int((~finite).any(axis=1).sum())
        return f"the features of {bad} of {n} images hold NaN or infinite values (a model with NaN weights?)"
    # Exactly (or up to rounding) equal rows: scikit-learn's PCA initialisation divides by zero.
    if np.ptp(x, axis=0).max() <= 1e-12 * max(1.0, float(np.abs(x).max())):
        return (
            f"the features are the same for all {n} images (a model that gives every input the "
            "same features: untrained, or all its ReLUs are dead)"
        )
    if method == "t-SNE" and n < MIN_TSNE_POINTS:
        return f"t-SNE needs at least {MIN_TSNE_POINTS} images; got {n}"
    if method == "t-SNE" and x.shape[1] < 2:
        return f"t-SNE needs at least 2 features per image; got {x.shape[1]}"
    return None


def pca_2d(features: np.ndarray) -> np.ndarray:
    """Project ``(N, F)`` features on their first two principal components: ``(N, 2)``.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 1.0, 1.0]])
        >>> pca_2d(x).shape
        (3, 2)
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)  # (N, F) centred
    # Right singular vectors of the centred data are the principal directions.
    _, _, vt = np.linalg.svd(x, full_matrices=False)  # vt: (min(N, F), F)
    points = x @ vt[:2].T  # (N, <=2)
    if points.shape[1] < 2:
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    return points


def has_sklearn() -> bool:
    """Whether scikit-learn (for t-SNE) is installed."""
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return False
    return True


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """t-SNE embedding ``(N, 2)`` of ``(N, F)`` features (needs scikit-learn).

    PCA to at most 50 dimensions first, as the t-SNE authors advise, to save time.

    Raises:
        DegenerateFeatures: features t-SNE cannot embed (NaN, fewer than ``MIN_TSNE_POINTS``
            images, the same features for every image); the message says which.
    """
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ImportError("t-SNE needs scikit-learn: pip install scikit-learn") from None
    problem = projection_problem(features, "t-SNE")
    if problem is not None:
        raise DegenerateFeatures(f"tsne_2d: {problem}")
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if x.shape[1] > 50 and n > 50:
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:50].T  # (N, 50)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    # One OpenMP thread: on a few hundred points threads gain little, and on a busy machine
    # their spin-waiting made t-SNE ten times slower (measured: 600 points, 8 s vs 54 s).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def plot_projection(
    points: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    method: str = "PCA",
) -> Path:
    """Scatter ``(N, 2)`` points coloured by class (legend with class names); ``SIZE`` PNG."""
    fig = new_figure(*SIZE)
    ax = fig.add_subplot(1, 1, 1)
    cmap = _colors(len(classes))
    labels = np.asarray(labels)
    for k, name in enumerate(classes):
        mask = labels == k
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=10, alpha=0.7, color=cmap[k], label=str(name))
    ax.set_title(f"Penultimate-layer features of {len(points)} test images ({method})")
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9, markerscale=2, title="class")
    fig.tight_layout()
    return save(fig, path)


def _colors(k: int) -> list[tuple[float, ...]]:
    """``k`` distinct colours: tab10 / tab20 for few classes, a hue wheel for many."""
    from matplotlib import colormaps

    name = "tab10" if k <= 10 else "tab20" if k <= 20 else "hsv"
    cmap = colormaps[name]
    if name == "hsv":
        return [tuple(cmap(i / k)) for i in range(k)]
    return [tuple(cmap(i)) for i in range(k)]
