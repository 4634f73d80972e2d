"""The error types and the two helpers that word every argument and shape error."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError, arg_error, check_int, check_real, int_pair, shape_error


def test_arg_error_format():
    err = arg_error("Conv2D", "stride", "a positive int or pair", 0)
    assert isinstance(err, ValueError) and not isinstance(err, ShapeError)
    assert str(err) == "Conv2D: argument `stride` must be a positive int or pair. Received: stride=0"


@pytest.mark.parametrize(
    ("received", "shown"),
    [
        ("same", "padding='same'"),
        (None, "padding=None"),
        ((1, 2, 3), "padding=(1, 2, 3)"),
        (-1.5, "padding=-1.5"),
    ],
)
def test_arg_error_shows_the_repr_of_the_value(received, shown):
    assert str(arg_error("MaxPool2D", "padding", "an int", received)).endswith(f"Received: {shown}")


def test_shape_error_format_with_a_shape():
    err = shape_error("Dense", "input", "shape (N, 4)", (2, 3))
    assert isinstance(err, ShapeError) and isinstance(err, ValueError)
    assert str(err) == "Dense: input must have shape (N, 4). Received: shape (2, 3)"


def test_shape_error_format_with_text():
    err = shape_error("Conv2D", "input", "at least 3 rows", "2 rows")
    assert str(err) == "Conv2D: input must have at least 3 rows. Received: 2 rows"


def test_errors_can_be_caught_as_builtin_types():
    with pytest.raises(
        ValueError, match=r"^Dense: input must have shape \(N, 4\)\. Received: shape \(2, 3\)$"
    ):
        raise shape_error("Dense", "input", "shape (N, 4)", (2, 3))
    assert issubclass(CnnlabError, RuntimeError)
    assert not issubclass(CnnlabError, ValueError)


# ---- the shared argument checks: check_int and int_pair (Keras's standardize_tuple) ----------
def test_check_int_returns_a_python_int():
    value = check_int("Dense", "in_features", np.int64(3))
    assert value == 3 and type(value) is int
    assert check_int("EarlyStopping", "patience", 0, minimum=0) == 0


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3", None])
def test_check_int_refuses_with_the_argument_named(bad):
    with pytest.raises(
        ValueError, match=r"^Dense: argument `in_features` must be a positive int\. Received: "
    ):
        check_int("Dense", "in_features", bad)


def test_check_int_minimum_zero_wording():
    with pytest.raises(ValueError, match=r"`patience` must be an int >= 0\. Received: patience=-1$"):
        check_int("EarlyStopping", "patience", -1, minimum=0)


@pytest.mark.parametrize(
    ("value", "pair"), [(3, (3, 3)), ((2, 3), (2, 3)), ([1, 4], (1, 4)), (np.int32(2), (2, 2))]
)
def test_int_pair_accepts_an_int_or_a_pair(value, pair):
    result = int_pair("Conv2D", "kernel_size", value)
    assert result == pair and all(type(v) is int for v in result)


@pytest.mark.parametrize("bad", [0, (3, 0), (1, 2, 3), (2.0, 2), (True, 1), "3", None, []])
def test_int_pair_refuses_with_one_wording(bad):
    with pytest.raises(
        ValueError,
        match=r"^MaxPool2D: argument `stride` must be a positive int or a pair of them\. Received: ",
    ):
        int_pair("MaxPool2D", "stride", bad)


def test_int_pair_names_the_alternatives_and_the_minimum():
    assert int_pair("Conv2D", "padding", 0, minimum=0) == (0, 0)
    with pytest.raises(
        ValueError,
        match=r"`padding` must be an int >= 0, a pair of them, or one of 'valid', 'same'\. Received: padd",
    ):
        int_pair("Conv2D", "padding", "full", minimum=0, alternatives=("valid", "same"))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "0.1", None])
def test_check_real_refuses_non_finite_bools_and_strings(bad):
    with pytest.raises(ValueError, match=r"^LeakyReLU: argument `negative_slope` must be a finite real"):
        check_real("LeakyReLU", "negative_slope", bad)


def test_check_real_returns_the_value_unchanged_and_applies_the_range():
    assert type(check_real("Dropout", "p", 0, "a number with 0 <= p < 1", lambda v: 0 <= v < 1)) is int
    with pytest.raises(ValueError, match=r"`p` must be a number with 0 <= p < 1\. Received: p=1$"):
        check_real("Dropout", "p", 1, "a number with 0 <= p < 1", lambda v: 0 <= v < 1)
