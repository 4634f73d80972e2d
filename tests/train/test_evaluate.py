"""Test metrics and test-time augmentation (cnnlab.train.evaluation.evaluate)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.train.evaluation.evaluate import evaluate_arrays, predict_proba


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def net() -> cnnlab.Sequential:
    return cnnlab.Sequential(
        cnnlab.Conv2D(1, 4, 3, padding=1, rng=0),
        cnnlab.ReLU(),
        cnnlab.Flatten(),
        cnnlab.Dense(4 * 5 * 6, 3, rng=1),
    ).astype(np.float64)


def test_flip_averages_the_image_and_its_mirror(net: cnnlab.Sequential) -> None:
    x = np.random.default_rng(0).standard_normal((7, 1, 5, 6))
    net.eval()
    plain = softmax(net.forward(x))
    mirror = softmax(net.forward(np.ascontiguousarray(x[:, :, :, ::-1])))  # width axis reversed
    np.testing.assert_allclose(predict_proba(net, x, "none", batch_size=3), plain, rtol=1e-12)
    np.testing.assert_allclose(predict_proba(net, x, "flip", batch_size=3), (plain + mirror) / 2, rtol=1e-12)
    assert not np.allclose(plain, mirror)  # the mirror really is another input


def test_evaluate_with_tta_reports_both_accuracies(net: cnnlab.Sequential) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 1, 5, 6)), rng.integers(0, 3, 40)
    plain = evaluate_arrays(net, x, y, ["a", "b", "c"])
    flip = evaluate_arrays(net, x, y, ["a", "b", "c"], tta="flip")
    assert "tta" not in plain and flip["tta"] == "flip"
    assert flip["accuracy_without_tta"] == plain["accuracy"]
    probs = predict_proba(net, x, "flip")
    assert flip["accuracy"] == np.mean(probs.argmax(axis=1) == y)
    assert flip["test_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(40), y])), rel=1e-12)
    assert np.sum(flip["confusion_matrix"]) == 40
    # Without TTA the loss is the plain mean cross-entropy of the logits.
    expected = cnnlab.SoftmaxCrossEntropy().forward(net.predict(x), y)
    assert plain["test_loss"] == pytest.approx(expected, rel=1e-9)


def test_unknown_tta_is_refused(net: cnnlab.Sequential) -> None:
    x = np.zeros((2, 1, 5, 6))
    with pytest.raises(ValueError, match=r"tta.*one of none, flip.*Received: tta='rotate'"):
        evaluate_arrays(net, x, np.array([0, 1]), ["a", "b", "c"], tta="rotate")
