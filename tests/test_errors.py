"""The error types and the two helpers that word every argument and shape error."""

from __future__ import annotations

import pytest

from cnnlab.errors import CnnlabError, ShapeError, arg_error, shape_error


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
