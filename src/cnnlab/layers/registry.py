"""The layer registry: every layer type by name, and building a model from its config.

``Layer`` subclasses register themselves in ``LAYER_TYPES`` when their module is imported
(see ``Layer.__init_subclass__``, which refuses a second class under a taken name);
``import_all_layers`` imports every module of the ``cnnlab.layers`` package, so that a
config (from a YAML file, a saved model or a checkpoint) can name any layer without a list
kept by hand: a new layer is a new file in ``layers/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import cnnlab.layers
from cnnlab.errors import CnnlabError
from cnnlab.layers.base import LAYER_TYPES, Layer, from_config

#: Loads refuse architectures that declare more parameters than this (before allocating).
MAX_PARAMETERS = 2**31


def _layer_modules() -> tuple[str, ...]:
    found = pkgutil.iter_modules(cnnlab.layers.__path__)
    return tuple(sorted(info.name for info in found if not info.ispkg))


#: Every module of the ``cnnlab.layers`` package (found in its folder, not listed by hand).
LAYER_MODULES = _layer_modules()


def import_all_layers() -> dict[str, type[Layer]]:
    """Import every ``cnnlab.layers`` module so ``LAYER_TYPES`` knows all layer types.

    Returns:
        ``LAYER_TYPES`` (name -> class).

    Example:
        >>> "conv" in LAYER_MODULES and "Conv2D" in import_all_layers()
        True
    """
    for module in LAYER_MODULES:
        importlib.import_module(f"cnnlab.layers.{module}")
    return LAYER_TYPES


def config_parameter_count(config: Any) -> int:
    """Number of trainable values a ``to_config`` architecture declares (without building it).

    Each layer type counts its own (``Layer.config_parameters``); nested layer configs
    (Sequential, Residual) are added up. Python ints, so no overflow; values a file may
    hold that are not layer configs count as 0.

    Example:
        >>> config_parameter_count({"type": "Dense", "args": {"in_features": 4, "out_features": 3}})
        15
    """
    if isinstance(config, list):
        return sum(config_parameter_count(c) for c in config)
    if not isinstance(config, dict):
        return 0
    args = config.get("args", {})
    if not isinstance(args, dict):
        return 0
    kind = config.get("type")
    cls = import_all_layers().get(kind) if isinstance(kind, str) else None
    count = cls.config_parameters(args) if cls is not None else 0
    nested = [v for v in args.values() if isinstance(v, (dict, list))]
    return count + sum(config_parameter_count(v) for v in nested)


def build_from_config(config: Any, max_parameters: int = MAX_PARAMETERS) -> Layer:
    """``from_config`` after importing every layer type and refusing absurdly large models."""
    import_all_layers()
    count = config_parameter_count(config)
    if count > max_parameters:
        raise CnnlabError(
            f"architecture declares {count:,} parameters, more than the limit of "
            f"{max_parameters:,}; refusing to allocate it (corrupt or hostile file?)"
        )
    return from_config(config)
