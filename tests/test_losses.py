"""Losses: gradchecks, PyTorch parity (labels, probabilities, label smoothing, MSE), stability, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.losses import MSELoss, SoftmaxCrossEntropy


def probabilities(rng: np.random.Generator, N: int, K: int) -> np.ndarray:
    p = rng.random((N, K))
    return p / p.sum(axis=1, keepdims=True)


# ---- gradchecks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.99])
def test_cross_entropy_gradcheck_labels(smoothing, rng):
    logits = rng.standard_normal((5, 4)) * 3
    labels = rng.integers(0, 4, size=5)
    assert gradcheck(SoftmaxCrossEntropy(smoothing), logits, targets=labels).ok(1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck_probabilities(smoothing, rng):
    logits = rng.standard_normal((3, 6))
    targets = probabilities(rng, 3, 6)
    assert gradcheck(SoftmaxCrossEntropy(smoothing), logits, targets=targets).ok(1e-6)
    unnormalized = rng.random((3, 6))  # rows not summing to 1: still the exact gradient
    assert gradcheck(SoftmaxCrossEntropy(smoothing), logits, targets=unnormalized).ok(1e-6)


def test_mse_gradcheck(rng):
    assert gradcheck(MSELoss(), rng.standard_normal((4, 3)), targets=rng.standard_normal((4, 3))).ok(1e-6)
    assert gradcheck(
        MSELoss(), rng.standard_normal((2, 3, 2, 2)), targets=rng.standard_normal((2, 3, 2, 2))
    ).ok(1e-6)


# ---- PyTorch parity -------------------------------------------------------------------------------
def torch_loss_and_grad(torch, fn, logits, targets):
    lt = torch.tensor(logits, requires_grad=True)
    loss = fn(lt, torch.tensor(targets))
    loss.backward()
    return loss.item(), lt.grad.numpy()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.35, 0.99])
@pytest.mark.parametrize(("N", "K"), [(1, 2), (7, 10), (16, 3)])
@pytest.mark.parametrize("kind", ["labels", "probabilities", "one_hot"])
def test_cross_entropy_matches_torch(torch, smoothing, N, K, kind, rng):
    logits = rng.standard_normal((N, K)) * 4
    labels = rng.integers(0, K, size=N)
    targets = {
        "labels": labels,
        "probabilities": probabilities(rng, N, K),
        "one_hot": np.eye(K)[labels],
    }[kind]
    loss = SoftmaxCrossEntropy(label_smoothing=smoothing)
    value = loss.forward(logits, targets)
    grad = loss.backward()
    expected, expected_grad = torch_loss_and_grad(
        torch,
        lambda a, b: torch.nn.functional.cross_entropy(a, b, label_smoothing=smoothing),
        logits,
        targets,
    )
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


def test_one_hot_and_labels_agree(rng):
    logits = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, size=6)
    a, b = SoftmaxCrossEntropy(0.1), SoftmaxCrossEntropy(0.1)
    assert a.forward(logits, labels) == pytest.approx(b.forward(logits, np.eye(5)[labels]), rel=1e-14)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4, 4)])
def test_mse_matches_torch(torch, shape, rng):
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    loss = MSELoss()
    value = loss.forward(pred, target)
    expected, expected_grad = torch_loss_and_grad(torch, torch.nn.functional.mse_loss, pred, target)
    assert value == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(loss.backward(), expected_grad, rtol=1e-10, atol=1e-14)


# ---- hand-computed and stability ------------------------------------------------------------------
def test_cross_entropy_hand_case():
    loss = SoftmaxCrossEntropy()
    # Two equal logits: softmax = (1/2, 1/2), loss = log 2; the mean over n = 2 rows.
    value = loss.forward(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([0, 1]))
    assert value == pytest.approx(np.log(2.0), rel=1e-15)
    np.testing.assert_allclose(loss.backward(), [[-0.25, 0.25], [0.25, -0.25]], rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extreme_logits_finite(dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 1000.0]], dtype=dtype)
    loss = SoftmaxCrossEntropy(label_smoothing=0.1)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value = loss.forward(logits, np.array([1, 0]))  # confidently wrong on both rows
        grad = loss.backward()
    assert np.isfinite(value) and value > 1000
    assert np.all(np.isfinite(grad)) and grad.dtype == dtype
    assert SoftmaxCrossEntropy().forward(logits, np.array([0, 1])) == pytest.approx(np.log(2) / 2)


# ---- errors ---------------------------------------------------------------------------------------
def test_label_errors():
    loss = SoftmaxCrossEntropy()
    logits = np.zeros((3, 10))
    with pytest.raises(
        ValueError, match=r"labels must be in \[0, K\) = \[0, 10\) .* Received: label 10 at index 2"
    ):
        loss.forward(logits, np.array([0, 9, 10]))
    with pytest.raises(ValueError, match=r"Received: label -1 at index 0"):
        loss.forward(logits, np.array([-1, 0, 0]))
    with pytest.raises(TypeError, match=r"labels \(N,\) must be integers .* Received: dtype float64"):
        loss.forward(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(
        ShapeError, match=r"labels must have shape \(N,\) = \(3,\), .* Received: shape \(4,\)"
    ):
        loss.forward(logits, np.array([0, 1, 2, 3]))


def test_shape_errors():
    loss = SoftmaxCrossEntropy()
    with pytest.raises(
        ShapeError,
        match=r"SoftmaxCrossEntropy: logits must have shape \(N, K\) .* Received: shape \(2, 3, 4, 4\)",
    ):
        loss.forward(np.zeros((2, 3, 4, 4)), np.array([0, 1]))
    with pytest.raises(
        ShapeError,
        match=r"targets must have the logits' shape \(N, K\) = \(2, 3\)\. Received: shape \(2, 4\)",
    ):
        loss.forward(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"targets must be labels \(N,\) = \(2,\) or probabilities"):
        loss.forward(np.zeros((2, 3)), np.zeros((2, 3, 1)))
    with pytest.raises(
        ShapeError, match=r"MSELoss: target must have the shape of pred \(2, 3\)\. Received: shape \(3, 2\)"
    ):
        MSELoss().forward(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_bad_label_smoothing(value):
    # 1.0 (issue 15): every target uniform, nothing to learn
    with pytest.raises(
        ValueError,
        match=r"SoftmaxCrossEntropy: argument `label_smoothing` must be a number in \[0, 1\)\. Received",
    ):
        SoftmaxCrossEntropy(value)


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), MSELoss()], ids=repr)
def test_backward_before_forward(loss):
    with pytest.raises(CnnlabError, match=rf"{loss.name}: backward\(\) called before forward\(\)"):
        copy.deepcopy(loss).backward()


def test_names_reprs_configs():
    assert SoftmaxCrossEntropy().name == "SoftmaxCrossEntropy"
    assert MSELoss().name == "MSELoss"
    assert repr(SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    assert repr(SoftmaxCrossEntropy(label_smoothing=0.1)) == "SoftmaxCrossEntropy(label_smoothing=0.1)"
    assert repr(MSELoss()) == "MSELoss()"
    assert SoftmaxCrossEntropy(0.2).get_config() == {"label_smoothing": 0.2}
    assert (
        repr(SoftmaxCrossEntropy(**SoftmaxCrossEntropy(0.2).get_config()))
        == "SoftmaxCrossEntropy(label_smoothing=0.2)"
    )
    assert MSELoss().get_config() == {}


def test_call_is_forward(rng):
    logits, labels = rng.standard_normal((2, 3)), np.array([0, 2])
    assert SoftmaxCrossEntropy()(logits, labels) == SoftmaxCrossEntropy().forward(logits, labels)
