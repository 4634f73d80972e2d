"""The PyTorch bridge: ``to_torch(model)`` and ``from_torch(module)``, weights copied exactly.

cnnlab uses PyTorch's names, layouts and state_dict keys on purpose, so a conversion is a
one-to-one map of layers plus a copy of the arrays. The map is the layer table: each layer
class names its module in its own file (``torch = TorchSpec("torch.nn.Conv2d", ...)``, see
``cnnlab.layers.base``) and translates its arguments (``torch_args``/``from_torch_args``);
this module only walks it. ``torch_table()`` prints it:

==========================  =========================================================
cnnlab                      PyTorch
==========================  =========================================================
Conv2D                      nn.Conv2d ("same" at stride > 1 or even kernel: ``Conv2dSame``; groups)
MaxPool2D / AvgPool2D       nn.MaxPool2d / nn.AvgPool2d (every option; asymmetric pads:
                            ``PaddedMaxPool2d`` / ``PaddedAvgPool2d``)
GlobalAvgPool2D             ``GlobalAvgPool2d`` (mean over H and W)
Sigmoid, Tanh, ReLU         nn.Sigmoid, nn.Tanh, nn.ReLU
LeakyReLU, ELU              nn.LeakyReLU (cnnlab's default slope is 0.1), nn.ELU
Maxout                      ``Maxout``
Softmax                     nn.Softmax(dim=1)
Dense, Flatten, Dropout     nn.Linear, nn.Flatten, nn.Dropout
BatchNorm1D / BatchNorm2D   nn.BatchNorm1d / nn.BatchNorm2d (eps, momentum, running stats)
Residual                    ``Residual`` (attributes ``block`` and ``shortcut``)
Sequential                  nn.Sequential
Embedding                   ``ChannelsFirstEmbedding`` (nn.Embedding, output (N, D, L))
Conv1D                      nn.Conv1d ("same" at stride > 1 or even kernel: ``Conv1dSame``)
MaxPool1D / AvgPool1D       nn.MaxPool1d / nn.AvgPool1d (every option)
GlobalMaxPool1D             ``GlobalMaxPool1d`` (max over L)
MaskedMaxPool1D             ``MaskedMaxPool1d`` (max over L at real tokens; reads features, ids)
Graph                       ``GraphModule`` (an nn.ModuleDict of the nodes, run in order)
Concat(axis) / Add()        ``Concat(dim)`` (torch.cat) / ``Add()`` (x0 + x1 + ...)
LocalResponseNorm           nn.LocalResponseNorm
ChannelShuffle              nn.ChannelShuffle
ReLU6, Hardswish            nn.ReLU6, nn.Hardswish
LogSoftmax(axis)            nn.LogSoftmax(dim=axis)
==========================  =========================================================

The names in ``backquotes`` are the small modules of ``cnnlab.interop.torch_modules``.
Both directions keep the dtype (float32 or float64) and the train/eval mode. Dropout masks
come from each framework's own random generator, so only dropout differs between the two.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.interop.torch_modules import CUSTOM_PREFIX, import_torch, torch_modules
from cnnlab.layers.base import Layer, unsupported_torch
from cnnlab.layers.registry import import_all_layers


def to_torch(model: Layer) -> Any:
    """The equivalent ``torch.nn.Module``, with the weights, buffers, dtype and mode copied.

    Args:
        model: any cnnlab layer or model (usually a ``Sequential``).

    Returns:
        A ``torch.nn.Module`` on the CPU whose ``state_dict()`` has the same keys as
        ``model.state_dict()`` (plus BatchNorm's ``num_batches_tracked``).

    Raises:
        CnnlabError: torch is not installed, or a layer type has no PyTorch equivalent.

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> from cnnlab.interop.torch import to_torch
        >>> from cnnlab.models import small
        >>> to_torch(small(input_size=8, rng=0))[0]
        Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    torch = import_torch()
    module = _module_for(model)
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}.get(
        np.dtype(model.dtype)
    )
    if dtype is None:
        raise CnnlabError(f"to_torch: only float32 and float64 models convert. Received: dtype {model.dtype}")
    module.to(dtype)
    with torch.no_grad():
        targets = module.state_dict(keep_vars=True)
        for key, value in model.state_dict().items():
            targets[key].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    module.train(model.training)
    return module


def from_torch(module: Any) -> Layer:
    """The equivalent cnnlab model of a ``torch.nn.Module`` built from supported modules.

    Supported: the modules ``to_torch`` produces (see the table in this module's docstring),
    also ``nn.Conv2d(padding="same")`` and ``nn.Identity`` as a Residual shortcut.

    Args:
        module: a ``torch.nn.Module`` (usually an ``nn.Sequential``), on any device.

    Returns:
        A cnnlab layer with the same weights, buffers, dtype and train/eval mode.

    Raises:
        CnnlabError: a module type or option cnnlab does not have (the message says which).

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> from torch import nn
        >>> from cnnlab.interop.torch import from_torch
        >>> from_torch(nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(0.01)))
        Sequential(
          (0): Dense(4, 3)
          (1): LeakyReLU(negative_slope=0.01)
        )
    """
    import_torch()
    layer = _layer_for(module)
    tensors = module.state_dict()
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
    if dtype is not None:
        name = str(dtype).removeprefix("torch.")
        if name not in ("float32", "float64"):
            raise CnnlabError(f"from_torch: only float32 and float64 modules convert. Received: dtype {name}")
        layer.astype(np.dtype(name))
    layer.load_state_dict({k: v.detach().cpu().numpy() for k, v in tensors.items()})
    layer.train(module.training)
    return layer


# ---- the table ------------------------------------------------------------------------------
def torch_class(path: str) -> Any:
    """The torch module class a layer table entry names, e.g. ``"torch.nn.Conv2d"``.

    Paths under ``cnnlab.interop.torch_modules.`` name the classes ``torch_modules()`` builds.
    """
    if path.startswith(CUSTOM_PREFIX):
        return getattr(torch_modules(), path.removeprefix(CUSTOM_PREFIX))
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def torch_table() -> dict[Any, type[Layer]]:
    """Every torch module class the layer table names -> its cnnlab layer class.

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> torch_table()[torch.nn.Linear].__name__
        'Dense'
    """
    table: dict[Any, type[Layer]] = {}
    for cls in import_all_layers().values():
        if cls.torch is not None:
            for path in cls.torch.modules:
                table[torch_class(path)] = cls
    return table


def torch_call(layer: Layer) -> tuple[str, list[Any], dict[str, Any]]:
    """``(module path, *args, **kwargs)`` that build ``layer``'s torch module (children as layers).

    Raises:
        CnnlabError: the layer has no PyTorch equivalent (the message lists those that do).
    """
    path = layer.torch_module()
    if path is None:
        known = ", ".join(
            sorted(c.__name__ for c in import_all_layers().values() if c.torch and c.torch.module)
        )
        raise CnnlabError(f"to_torch: no PyTorch equivalent for {layer.name}. Supported layers: {known}")
    kwargs = layer.torch_args()
    star = type(layer).torch.star_arg  # type: ignore[union-attr]  # not None: path is not None
    args = list(kwargs.pop(star)) if star else []
    return path, args, kwargs


# ---- cnnlab -> torch ------------------------------------------------------------------------
def _module_for(layer: Layer) -> Any:
    """The torch module for one cnnlab layer (children converted recursively), weights not copied."""
    path, args, kwargs = torch_call(layer)
    args = [_module_for(child) for child in args]
    kwargs = {k: _nested(v, Layer, _module_for) for k, v in kwargs.items()}
    try:
        return torch_class(path)(*args, **kwargs)
    except KeyError as exc:  # nn.ModuleDict refuses a key that is one of its attributes
        raise CnnlabError(
            f"to_torch: {layer.name}: torch refused a name ({exc}); rename it (a Graph node name "
            "must not be an attribute of nn.ModuleDict such as 'keys', 'items', 'forward')"
        ) from None


def _nested(value: Any, kind: type, convert: Any) -> Any:
    """``value`` with every ``kind`` instance in it converted, also inside lists, tuples and
    dicts (a Graph's nodes: ``[{"name": ..., "inputs": [...], "module": layer}]``)."""
    if isinstance(value, kind):
        return convert(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_nested(v, kind, convert) for v in value)
    if isinstance(value, dict):
        return {k: _nested(v, kind, convert) for k, v in value.items()}
    return value


# ---- torch -> cnnlab ------------------------------------------------------------------------
def _layer_for(module: Any) -> Layer:
    """The cnnlab layer for one torch module (children converted recursively), weights not copied."""
    from torch import nn

    table = torch_table()
    # The class itself or the nearest base class in the table (a subclass that keeps its
    # base's forward computes what the base does).
    match: Any = next((base for base in type(module).__mro__ if base in table), None)
    if match is None or type(module).forward is not match.forward:
        raise unsupported_torch(module, "supported are " + ", ".join(_supported_names(table)))
    cls = table[match]
    kwargs = cls.from_torch_args(module)
    kwargs = {k: _nested(v, nn.Module, _layer_for) for k, v in kwargs.items()}
    star = cls.torch.star_arg  # type: ignore[union-attr]  # in the table: has a spec
    args = list(kwargs.pop(star)) if star else []
    return cls(*args, **kwargs)


def _supported_names(table: dict[Any, type[Layer]]) -> list[str]:
    """nn.Sequential (the container) first, then torch.nn's modules, then cnnlab's own."""
    names = []
    for torch_cls in table:
        if torch_cls.__module__.startswith("torch."):
            names.append(f"nn.{torch_cls.__name__}")
        else:
            names.append(f"cnnlab.interop.torch_modules.{torch_cls.__name__}")
    return sorted(names, key=lambda n: (n != "nn.Sequential", not n.startswith("nn."), n))
