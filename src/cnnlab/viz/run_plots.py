"""Every plot of a run folder, written into ``RUN_DIR/plots/`` (``cnnlab plot RUN_DIR``).

Reads what ``cnnlab train`` wrote (history.csv, metrics.json, model.npz, config.json) and
the dataset's test split, and makes each plot whose inputs exist: a run that crashed
before testing still gets its learning curves.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data import load_dataset
from cnnlab.data.loader import Normalizer
from cnnlab.errors import ShapeError
from cnnlab.functional.activations import softmax
from cnnlab.io import load_with_extra
from cnnlab.jsonfile import read_json_object
from cnnlab.models.probe import feature_maps, layer_label, penultimate_features
from cnnlab.train.loop.history import History
from cnnlab.train.runs.files import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PLOTS_DIR
from cnnlab.viz.cam_plots import plot_cam_misclassified
from cnnlab.viz.confusion import plot_confusion, plot_per_class
from cnnlab.viz.curves import plot_curves
from cnnlab.viz.gradcam import default_layer, grad_cam
from cnnlab.viz.images import plot_feature_maps, plot_filters, plot_misclassified
from cnnlab.viz.projection import has_sklearn, pca_2d, plot_projection, projection_problem, tsne_2d
from cnnlab.viz.text_report import text_test_plots

#: File names in ``RUN_DIR/plots/``, in report order.
PLOT_FILES = {
    "curves": "learning_curves.png",
    "confusion": "confusion_matrix.png",
    "per_class": "per_class_accuracy.png",
    "misclassified": "misclassified.png",
    "gradcam": "gradcam_misclassified.png",
    "filters": "filters.png",
    "feature_maps": "feature_maps.png",
    "pca": "feature_space_pca.png",
    "tsne": "feature_space_tsne.png",
}
#: At most this many test images go into the projections (t-SNE is quadratic in N).
MAX_PROJECTED = 600
#: Misclassified test images (most confident first) with Grad-CAM maps in the report.
MAX_GRADCAM = 9


def plot_run(run_dir: str | os.PathLike[str], tsne: bool | None = None) -> list[Path]:
    """Make every plot of the run in ``run_dir``; return the PNG paths written.

    Args:
        run_dir: a folder written by ``cnnlab train``.
        tsne: also draw the t-SNE projection (default: when scikit-learn is installed).

    Raises:
        FileNotFoundError: ``run_dir`` has neither history.csv nor model.npz.
    """
    run = Path(run_dir)
    if not (run / HISTORY_FILE).exists() and not (run / MODEL_FILE).exists():
        raise FileNotFoundError(f"{run} is not a run folder (no {HISTORY_FILE} or {MODEL_FILE})")
    out = run / PLOTS_DIR
    written: list[Path] = []
    history_path = run / HISTORY_FILE
    if history_path.exists():
        history = History.from_csv(history_path)
        if len(history):
            written.append(plot_curves(history, out / PLOT_FILES["curves"]))
    metrics = _read_json(run / METRICS_FILE)
    classes: list[str] = list(metrics.get("per_class", {}))
    if "confusion_matrix" in metrics and classes:
        written.append(plot_confusion(metrics["confusion_matrix"], classes, out / PLOT_FILES["confusion"]))
        written.append(plot_per_class(metrics["per_class"], out / PLOT_FILES["per_class"]))
    if (run / MODEL_FILE).exists():
        written += _model_plots(run, out, tsne)
    return written


def _model_plots(run: Path, out: Path, tsne: bool | None) -> list[Path]:
    """Filters, and (when the test split loads) misclassified, feature maps, projections
    (a text run: its most confident mistakes with the words that decided, projections)."""
    model, extra = load_with_extra(run / MODEL_FILE)
    written = []
    conv = next((layer for _, layer in model.named_layers() if type(layer).__name__ == "Conv2D"), None)
    if conv is not None:
        written.append(plot_filters(conv.params["weight"], out / PLOT_FILES["filters"]))
    if "text" in extra:  # a text run: its test texts, read as cnnlab train read them
        return written + text_test_plots(run, model, extra, out, tsne)
    test = _test_split(run, extra)
    if test is not None:
        written += _test_plots(model, extra, test[0], test[1], out, tsne)
    return written


def _test_plots(
    model: Any,
    extra: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    tsne: bool | None,
) -> list[Path]:
    classes = [str(c) for c in extra.get("classes") or range(int(labels.max()) + 1)]
    x = _normalize(images, extra)  # (N, C, H, W)
    probs = softmax(model.predict(x).astype(np.float64))  # (N, K)
    pred = probs.argmax(axis=1)
    confidence = probs[np.arange(len(pred)), pred]
    written = [
        plot_misclassified(images, labels, pred, confidence, classes, out / PLOT_FILES["misclassified"]),
    ]
    cams = _gradcam_plot(model, images, x, labels, pred, confidence, classes, out)
    written += [cams] if cams is not None else []
    maps = feature_maps(model, x[:1])
    if maps:
        written.append(
            plot_feature_maps(
                images[0],
                maps,
                out / PLOT_FILES["feature_maps"],
                title=f"Feature maps of test image 0 (class {classes[labels[0]]})",
            )
        )
    # A fixed random subset keeps t-SNE fast on big test sets and the picture reproducible.
    rng = np.random.default_rng(0)
    subset = np.sort(rng.permutation(len(x))[:MAX_PROJECTED])
    features = penultimate_features(model, x[subset])  # (n, F)
    methods = {"pca": ("PCA", pca_2d)}
    if has_sklearn() if tsne is None else tsne:
        methods["tsne"] = ("t-SNE", tsne_2d)
    for key, (method, project) in methods.items():
        problem = projection_problem(features, method)  # a degenerate input crashed t-SNE (issue 23)
        if problem is not None:
            warnings.warn(f"{out.parent}: skipping the {method} projection: {problem}", stacklevel=3)
            continue
        points = project(features)  # (n, 2)
        written.append(plot_projection(points, labels[subset], classes, out / PLOT_FILES[key], method))
    return written


def _gradcam_plot(
    model: Any,
    images: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    pred: np.ndarray,
    confidence: np.ndarray,
    classes: list[str],
    out: Path,
) -> Path | None:
    """Grad-CAM of the predicted and the true class for the most confident mistakes.

    None (no picture) for a model without a conv/pool stage (no 4-D layer output).
    """
    try:
        index = default_layer(model, x.shape[1:])
    except (ShapeError, AttributeError):  # no feature maps, or not a Sequential
        return None
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:MAX_GRADCAM]  # (n,)
    cam_pred = cam_true = np.zeros((0, *x.shape[2:]))
    if len(wrong):
        cam_pred = grad_cam(model, x[wrong], target=pred[wrong], layer=index)  # (n, H, W)
        cam_true = grad_cam(model, x[wrong], target=labels[wrong], layer=index)  # (n, H, W)
    path = out / PLOT_FILES["gradcam"]
    label = layer_label(index, model.layers[index])
    return plot_cam_misclassified(
        images[wrong], labels[wrong], pred[wrong], cam_pred, cam_true, classes, path, layer=label
    )


def _test_split(run: Path, extra: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The dataset's test images ``(N, C, H, W)`` in [0, 1] and labels, or None with a warning."""
    config = _read_json(run / CONFIG_FILE)
    name = extra.get("dataset") or config.get("data")
    if not name:
        warnings.warn(f"{run}: no dataset recorded; skipping plots of test images", stacklevel=3)
        return None
    try:
        test = load_dataset(name, root=config.get("data_dir"), download=False).test
    except (FileNotFoundError, ValueError, OSError) as exc:
        warnings.warn(
            f"{run}: cannot load the test split of {name!r} ({exc}); skipping plots of test images",
            stacklevel=3,
        )
        return None
    expected = extra.get("input_shape")
    if expected and list(test.x.shape[1:]) != list(expected):
        warnings.warn(
            f"{run}: test images are {test.x.shape[1:]}, the model takes {tuple(expected)}; "
            "skipping plots of test images",
            stacklevel=3,
        )
        return None
    return np.asarray(test.x), np.asarray(test.y)


def _normalize(x: np.ndarray, extra: dict[str, Any]) -> np.ndarray:
    state = extra.get("normalization")
    return Normalizer.from_state(state)(x) if state else x


def _read_json(path: Path) -> dict[str, Any]:
    return dict(read_json_object(path, missing={}))  # an error names the broken file
