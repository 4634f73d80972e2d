"""torchvision's model definitions as a test oracle, importable beside torch's CPU build.

PyPI's torchvision 0.28.0 (the release for torch 2.13.0) ships a compiled extension built
against torch's CUDA wheel. Beside the CPU build it does not load, so its operators
(``torchvision::nms``, ``roi_align``, ...) are never defined, and ``import torchvision``
then fails in ``torchvision/_meta_registrations.py``: ``torch.library.register_fake``
refuses a fake kernel for an operator that does not exist. The model definitions
(``torchvision.models.resnet`` and the others) use plain ``torch.nn`` and need none of
those operators, so ``import_torchvision`` imports the package with ``register_fake``
made tolerant of exactly that error (the fake kernel is skipped; the operator it describes
could not run anyway) and restores it afterwards.

The tests use torchvision as an oracle only: cnnlab never imports it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pytest


@functools.cache
def _import() -> Any:
    import torch.library

    original = torch.library.register_fake

    def tolerant(op: Any, *args: Any, **kwargs: Any) -> Any:
        if args and callable(args[0]):  # register_fake(op, fn): the direct form
            try:
                return original(op, *args, **kwargs)
            except RuntimeError as exc:
                if "does not exist" not in str(exc):
                    raise
                return None

        def decorate(fn: Any) -> Any:
            try:
                return original(op, *args, **kwargs)(fn)
            except RuntimeError as exc:  # the operator's extension did not load
                if "does not exist" not in str(exc):
                    raise
                return fn

        return decorate

    torch.library.register_fake = tolerant
    try:
        import torchvision
        import torchvision.models
    finally:
        torch.library.register_fake = original
    return torchvision


def import_torchvision() -> Any:
    """The ``torchvision`` module (its models importable); skipped without it, never in CI."""
    try:
        return _import()
    except ImportError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"torchvision is the zoo's test oracle and must be installed in CI: {exc}")
        pytest.skip(f"torchvision not installed (pip install torchvision==0.28.0): {exc}")
