"""Python API misuse gets cnnlab's words, not NumPy's internals (issue 23 item 8)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.train.loop.callbacks import EarlyStopping
from cnnlab.train.loop.fit import fit


def net(seed: int = 0) -> cnnlab.Sequential:
    return cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(4, 3, rng=seed))


def data(y=None):
    x = np.random.default_rng(0).random((12, 1, 2, 2), dtype=np.float32)
    return x, (np.arange(12) % 3 if y is None else y)


def run(model, y=None, optimizer=None, **kwargs):
    optimizer = optimizer or cnnlab.SGD(model.parameters(), lr=0.1)
    return fit(
        model,
        cnnlab.SoftmaxCrossEntropy(),
        optimizer,
        data(y),
        epochs=1,
        batch_size=4,
        verbose=False,
        **kwargs,
    )


def test_string_labels_are_refused_with_a_hint() -> None:
    labels = np.array(["cat", "dog", "fox"] * 4)
    with pytest.raises(
        ValueError,
        match=r"fit: the labels y of `train_data` must be integer class indices 0\.\.K-1 "
        r"\(map class names to indices first.*Received: labels of dtype <U3, the first np\.str_\('cat'\)|"
        r"Received: labels of dtype <U3, the first 'cat'",
    ):
        run(net(), labels)


def test_nan_labels_are_refused_with_their_index() -> None:
    labels = (np.arange(12) % 3).astype(float)
    labels[5] = np.nan
    with pytest.raises(
        ValueError,
        match=r"must be finite class indices 0\.\.K-1\. Received: 1 NaN/inf label\(s\), the first at index 5",
    ):
        run(net(), labels)


def test_a_single_callback_is_taken_as_a_list_of_one() -> None:
    history = run(net(), callbacks=EarlyStopping(monitor="val_loss", patience=1), val_split=0.25)
    assert len(history.rows) == 1


def test_callbacks_that_are_not_a_list_are_named() -> None:
    with pytest.raises(
        ValueError,
        match=r"fit: argument `callbacks` must be a list of Callback objects \(or one Callback\)\. "
        r"Received: callbacks=3",
    ):
        run(net(), callbacks=3)


def test_an_optimizer_on_another_models_parameters_is_named() -> None:
    model, other = net(0), net(1)
    with pytest.raises(
        ValueError,
        match=r"fit: the optimizer SGD was built on parameters that are not the model's \(2 of its 2, "
        r"the first `1\.weight` of a Dense that the model does not hold\)\. Build it on this model",
    ):
        run(model, optimizer=cnnlab.SGD(other.parameters(), lr=0.1))
    # a subset of the model's own parameters (the head only) is fine
    run(model, optimizer=cnnlab.SGD(model.parameters()[-1:], lr=0.1))


def test_a_manual_step_with_another_models_optimizer_names_the_cause() -> None:
    model, other = net(0), net(1)
    x, y = data()
    loss = cnnlab.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    with pytest.raises(CnnlabError, match="the optimizer holds another model's parameters"):
        cnnlab.SGD(other.parameters(), lr=0.1).step()


def test_a_gradient_of_the_wrong_shape_names_the_expected_shape() -> None:
    model = net()
    model.forward(np.ones((2, 1, 2, 2), np.float32))
    with pytest.raises(
        ShapeError,
        match=r"Sequential: the gradient passed to backward\(\) must have the shape of the last forward "
        r"output, \(2, 3\) \(the output of its last layer, Dense\)\. Received: shape \(2, 4\)",
    ):
        model.backward(np.ones((2, 4), np.float32))
    assert model.backward(np.ones((2, 3), np.float32)).shape == (2, 1, 2, 2)
