"""Accuracy, top-k accuracy, confusion matrix and per-class metrics: by hand and vs sklearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.train.evaluation.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    per_class_metrics,
    top_k_accuracy,
)


def test_accuracy_by_hand():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [5.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    y = np.array([0, 2, 1, 1])
    assert accuracy(logits, y) == 0.75
    assert accuracy(np.array([0, 2, 0, 1]), y) == 0.75  # predicted classes
    assert accuracy(logits, np.eye(3)[y]) == 0.75  # one-hot labels


def test_accuracy_errors():
    with pytest.raises(
        ShapeError, match=r"accuracy: labels must have 2 entries \(one per example\). Received: 3"
    ):
        accuracy(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(ShapeError, match=r"labels must have shape \(N,\) or \(N, C\)"):
        accuracy(np.zeros((2, 3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="at least one example"):
        accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int))


def test_top_k_by_hand_and_ties():
    logits = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.3]])
    y = np.array([2, 2, 1])
    assert top_k_accuracy(logits, y, k=1) == 0.0
    assert top_k_accuracy(logits, y, k=2) == pytest.approx(2 / 3)  # row 3: class 1 is 2nd of a tie
    assert top_k_accuracy(logits, y, k=3) == 1.0
    assert top_k_accuracy(logits, y, k=10) == 1.0
    # k=1 agrees with argmax even with ties
    tied = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    assert top_k_accuracy(tied, np.array([0, 1]), k=1) == accuracy(tied, np.array([0, 1])) == 0.5


def test_top_k_matches_sklearn(rng):
    from sklearn.metrics import top_k_accuracy_score

    logits = rng.standard_normal((200, 10))
    y = rng.integers(0, 10, size=200)
    for k in (1, 2, 5, 9):
        assert top_k_accuracy(logits, y, k=k) == pytest.approx(
            top_k_accuracy_score(y, logits, k=k, labels=np.arange(10)), abs=1e-15
        )


def test_top_k_errors():
    with pytest.raises(ValueError, match=r"argument `k` must be a positive int. Received: k=0"):
        top_k_accuracy(np.zeros((2, 3)), np.array([0, 1]), k=0)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\). Received: labels=3"):
        top_k_accuracy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ShapeError, match=r"logits must have shape \(N, C\)"):
        top_k_accuracy(np.zeros(3), np.array([0, 1, 2]))


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64


def test_confusion_matrix_matches_sklearn(rng):
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    y_true = rng.integers(0, 7, size=500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 7, size=500))
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, 7), sk_confusion_matrix(y_true, y_pred, labels=np.arange(7))
    )
    logits = np.eye(7)[y_pred]
    np.testing.assert_array_equal(confusion_matrix(y_true, logits, 7), confusion_matrix(y_true, y_pred, 7))


def test_confusion_matrix_errors():
    with pytest.raises(
        ValueError, match=r"confusion_matrix: argument `labels` must be class indices in \[0, 2\)"
    ):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\). Received: labels=-1"):
        confusion_matrix(np.array([-1, 1]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="argument `num_classes` must be a positive int"):
        confusion_matrix(np.array([0]), np.array([0]), 0)
    with pytest.raises(ValueError, match="argument `y` must be integer class indices"):
        confusion_matrix(np.array([0.5]), np.array([0]), 2)


def test_per_class_metrics_by_hand_without_warnings():
    # class 0: TP 3, predicted 3, support 4; class 1: TP 1, predicted 3, support 1;
    # class 2: never predicted, support 1; class 3: no examples, never predicted.
    cm = np.array([[3, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = per_class_metrics(cm)
    np.testing.assert_allclose(m["precision"], [1.0, 1 / 3, 0.0, 0.0])
    np.testing.assert_allclose(m["recall"], [0.75, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(m["f1"], [2 * 0.75 / 1.75, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(m["support"], [4, 1, 1, 0])


def test_per_class_metrics_match_sklearn(rng):
    from sklearn.metrics import precision_recall_fscore_support

    y_true = rng.integers(0, 6, size=300)
    y_pred = np.where(rng.random(300) < 0.5, y_true, rng.integers(0, 5, size=300))  # class 5 rarely predicted
    y_true[y_true == 4] = 3  # class 4 has no support
    m = per_class_metrics(confusion_matrix(y_true, y_pred, 6))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=np.arange(6), zero_division=0)
    np.testing.assert_allclose(m["precision"], p, rtol=1e-14)
    np.testing.assert_allclose(m["recall"], r, rtol=1e-14)
    np.testing.assert_allclose(m["f1"], f, rtol=1e-14)
    np.testing.assert_array_equal(m["support"], s)


def test_per_class_metrics_shape_error():
    with pytest.raises(ShapeError, match=r"cm must have shape \(C, C\). Received: shape \(2, 3\)"):
        per_class_metrics(np.zeros((2, 3)))


def test_classification_report():
    cm = np.array([[3, 1], [0, 2]])
    report = classification_report(cm, ["cat", "dog"])
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1].split() == ["cat", "1.000", "0.750", "0.857", "4"]
    assert lines[2].split() == ["dog", "0.667", "1.000", "0.800", "2"]
    assert lines[4].split() == ["accuracy", "0.833", "6"]
    assert lines[5].split() == ["macro", "avg", "0.833", "0.875", "0.829", "6"]
    assert lines[6].split() == ["weighted", "avg", "0.889", "0.833", "0.838", "6"]
    assert classification_report(cm).splitlines()[1].split()[0] == "0"
    with pytest.raises(ValueError, match=r"`class_names` must be 2 names \(one per class\)"):
        classification_report(cm, ["cat"])


def test_classification_report_matches_sklearn_averages(rng):
    from sklearn.metrics import classification_report as sk_report

    y_true = rng.integers(0, 4, size=100)
    y_pred = np.where(rng.random(100) < 0.7, y_true, rng.integers(0, 4, size=100))
    ours = classification_report(confusion_matrix(y_true, y_pred, 4), list("abcd"), digits=4).splitlines()
    theirs = sk_report(y_true, y_pred, target_names=list("abcd"), digits=4, zero_division=0).splitlines()
    ours = [line.split() for line in ours if line.strip()]
    theirs = [line.split() for line in theirs if line.strip()]
    assert ours == theirs
