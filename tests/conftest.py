"""Shared test fixtures. torch is the oracle: in CI (CI=true) a missing torch fails."""

from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def torch():
    """The PyTorch module, float64 default; skipped for users without torch, never in CI."""
    try:
        import torch as torch_module
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("torch is the test oracle and must be installed in CI (pip install torch==2.13.0)")
        pytest.skip("torch not installed (pip install torch==2.13.0 to run the PyTorch parity tests)")
    torch_module.set_num_threads(1)
    return torch_module


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
