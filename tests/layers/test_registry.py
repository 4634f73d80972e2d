"""The layer registry: every layer module found without a list, and no name registered twice."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import cnnlab.layers
from cnnlab.errors import CnnlabError
from cnnlab.layers.base import LAYER_TYPES, Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.registry import LAYER_MODULES, import_all_layers


def test_every_file_of_the_layers_folder_is_a_layer_module() -> None:
    folder = Path(cnnlab.layers.__file__).parent
    assert list(LAYER_MODULES) == sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def test_every_public_layer_class_of_those_modules_is_registered() -> None:
    registered = import_all_layers()
    for name in LAYER_MODULES:
        module = importlib.import_module(f"cnnlab.layers.{name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            defined_here = issubclass(cls, Layer) and cls.__module__ == module.__name__
            if defined_here and not cls_name.startswith("_") and cls_name in registered:
                assert registered[cls_name] is cls


def test_a_second_class_under_a_registered_name_is_refused() -> None:
    with pytest.raises(CnnlabError) as info:

        class Conv2D(Layer):  # the clash is the point
            pass

    message = str(info.value)
    assert "layer type 'Conv2D' is registered twice: cnnlab.layers.conv.Conv2D and " in message
    assert "test_a_second_class_under_a_registered_name_is_refused.<locals>.Conv2D" in message
    assert "register=False" in message
    assert LAYER_TYPES["Conv2D"] is importlib.import_module("cnnlab.layers.conv").Conv2D


def test_unregistered_and_private_classes_may_share_a_name() -> None:
    class Conv2D(Layer, register=False):  # a training-time view, never saved
        pass

    class _Scale(Layer):
        pass

    assert LAYER_TYPES["Conv2D"] is not Conv2D and "_Scale" not in LAYER_TYPES


def _define_twice_named() -> type[Layer]:
    class TwiceDefined(Layer):
        pass

    return TwiceDefined


def test_the_same_class_statement_again_is_not_a_clash() -> None:
    # e.g. importlib.reload of a layer module: the same qualified name replaces the entry.
    first, second = _define_twice_named(), _define_twice_named()
    try:
        assert first is not second and LAYER_TYPES["TwiceDefined"] is second
    finally:
        del LAYER_TYPES["TwiceDefined"]
    assert Conv2D is LAYER_TYPES["Conv2D"]
