"""Plot functions on small synthetic inputs: files exist, have the stated size, are not blank."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.datasets import FASHION_CLASSES
from cnnlab.errors import CnnlabError
from cnnlab.train.loop.history import History
from cnnlab.viz import activations, confusion, curves, images, prediction, projection
from cnnlab.viz.figure import new_figure

FASHION = FASHION_CLASSES  # long class names, as the dataset gives them


def check_png(path, size):
    """The PNG exists, is ``size`` pixels and is not one uniform colour."""
    from PIL import Image

    assert path.exists()
    with Image.open(path) as img:
        assert img.size == tuple(size)
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 5.0


def history(epochs=5, val=True):
    h = History()
    for e in range(1, epochs + 1):
        h.append(
            epoch=e,
            train_loss=2 / e,
            train_accuracy=1 - 0.5 / e,
            val_loss=2.2 / e + 0.5 * max(0, e - 3) if val else None,
            val_accuracy=1 - 0.6 / e if val else None,
            lr=0.01 * 0.1 ** (e // 3),
            seconds=1.0,
        )
    return h


def test_curves_mark_the_best_validation_epoch(tmp_path):
    h = history()
    assert curves.best_epoch(h) == 3  # validation loss rises after epoch 3
    check_png(curves.plot_curves(h, tmp_path / "c.png"), curves.SIZE)


def test_curves_without_validation_use_the_training_loss(tmp_path):
    h = history(val=False)
    assert curves.best_epoch(h) == 5
    check_png(curves.plot_curves(h, tmp_path / "c.png"), curves.SIZE)


def test_curves_refuse_an_empty_history(tmp_path):
    with pytest.raises(ValueError, match="no epochs"):
        curves.plot_curves(History(), tmp_path / "c.png")


def test_confusion_and_per_class_with_long_class_names(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, size=(10, 10)) + np.diag(np.full(10, 40))
    check_png(confusion.plot_confusion(cm, FASHION, tmp_path / "cm.png"), confusion.CONFUSION_SIZE)
    per_class = {n: {"recall": cm[i, i] / cm[i].sum(), "support": cm[i].sum()} for i, n in enumerate(FASHION)}
    check_png(confusion.plot_per_class(per_class, tmp_path / "pc.png"), confusion.PER_CLASS_SIZE)


def test_confusion_rejects_a_matrix_of_the_wrong_size(tmp_path):
    with pytest.raises(ValueError, match=r"must be \(3, 3\) for 3 classes. Received: shape \(2, 2\)"):
        confusion.plot_confusion([[1, 0], [0, 1]], ["a", "b", "c"], tmp_path / "cm.png")


def test_misclassified_grid(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((20, 3, 8, 8)).astype(np.float32)
    y_true = np.arange(20) % 10
    y_pred = np.where(np.arange(20) < 11, (y_true + 1) % 10, y_true)  # 11 mistakes -> 2 rows
    out = images.plot_misclassified(x, y_true, y_pred, rng.random(20), FASHION, tmp_path / "m.png")
    check_png(out, images.grid_size(11, images.MISCLASSIFIED_COLUMNS, images.MISCLASSIFIED_CELL))
    assert images.grid_size(11, 8, 150) == (1200, 350)


def test_misclassified_with_no_mistakes_says_so(tmp_path):
    y = np.arange(4)
    out = images.plot_misclassified(
        np.zeros((4, 1, 8, 8)), y, y, np.ones(4), list("abcd"), tmp_path / "m.png"
    )
    check_png(out, images.grid_size(0, images.MISCLASSIFIED_COLUMNS, images.MISCLASSIFIED_CELL))


@pytest.mark.parametrize("c_in", [1, 3, 4])
def test_filters(tmp_path, c_in):
    w = np.random.default_rng(0).normal(size=(12, c_in, 3, 3))
    check_png(
        images.plot_filters(w, tmp_path / "f.png"),
        images.grid_size(12, images.FILTER_COLUMNS, images.FILTER_CELL),
    )


def test_feature_maps_of_a_model(tmp_path):
    from cnnlab.models import build_model
    from cnnlab.models.probe import feature_maps, penultimate_features

    net = build_model("small", in_channels=1, input_size=(8, 8), num_classes=3, rng=0)
    x = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    maps = feature_maps(net, x[:1])
    assert [label for label, _ in maps] == [
        "0: Conv2D(1, 32, kernel_size=3, padding=1)",
        "2: MaxPool2D(2)",
        "3: Conv2D(32, 64, kernel_size=3, padding=1)",
        "5: MaxPool2D(2)",
    ]
    assert [m.shape for _, m in maps][-1] == (1, 64, 2, 2)
    assert penultimate_features(net, x, batch_size=2).shape == (5, 128)  # input of the last Dense
    assert net.training  # eval mode only inside the probe
    out = images.plot_feature_maps(x[0], maps, tmp_path / "fm.png")
    check_png(out, images.feature_maps_size(4))


def test_pca_finds_the_direction_of_largest_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    points = projection.pca_2d(x)
    assert points.shape == (200, 2)
    assert abs(np.corrcoef(points[:, 0], x[:, 0])[0, 1]) > 0.99
    assert projection.pca_2d(np.ones((3, 1))).shape == (3, 2)  # one feature: padded


def test_projection_plot_and_tsne(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 15)
    x = rng.normal(size=(45, 8)) + 6.0 * labels[:, None]
    check_png(
        projection.plot_projection(projection.pca_2d(x), labels, ["a", "b", "c"], tmp_path / "p.png"),
        projection.SIZE,
    )
    if projection.has_sklearn():
        assert projection.tsne_2d(x).shape == (45, 2)


def test_activation_curves_match_the_formulas(tmp_path):
    x = np.linspace(-3, 3, 61)
    c = activations.activation_curves(x)
    assert len(c) == 6
    sig = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(c["Sigmoid"][1], sig * (1 - sig), atol=1e-12)
    np.testing.assert_allclose(c["Tanh"][1], 1 - np.tanh(x) ** 2, atol=1e-12)
    np.testing.assert_allclose(c["Leaky ReLU (slope 0.1)"][0], np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(c["ELU (alpha 1)"][0], np.where(x > 0, x, np.expm1(x)), atol=1e-12)
    f, df = c["Maxout max(x, -0.5x - 1)"]
    np.testing.assert_allclose(f, np.maximum(x, -0.5 * x - 1), atol=1e-12)
    np.testing.assert_allclose(df, np.where(x > -0.5 * x - 1, 1.0, -0.5))
    check_png(activations.plot_activations(tmp_path / "a.png"), activations.SIZE)


def test_prediction_plot(tmp_path):
    probs = np.array([0.05, 0.6, 0.3, 0.05])
    out = prediction.plot_prediction(
        np.random.default_rng(0).random((1, 8, 8)), probs, list("abcd"), tmp_path / "p.png", top_k=3
    )
    check_png(out, prediction.SIZE)


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(CnnlabError, match="pip install matplotlib"):
        new_figure(100, 100)
