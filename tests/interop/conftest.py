"""Fixtures of the interop tests: a model with every layer type, and onnxruntime."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from every_layer import build_every_layer_model

from cnnlab.layers.sequential import Sequential


@pytest.fixture
def every_layer_model() -> Callable[..., Sequential]:
    return build_every_layer_model


@pytest.fixture(scope="session")
def onnxruntime() -> Any:
    """onnxruntime; the tests skip without it, except in CI (CI=true), where they fail."""
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("onnx and onnxruntime must be installed in CI (pip install 'cnnlab[onnx]')")
        pytest.skip("onnx/onnxruntime not installed (pip install 'cnnlab[onnx]')")
    return ort
