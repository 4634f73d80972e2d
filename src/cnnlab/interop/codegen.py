"""Write a cnnlab model as a readable, standalone PyTorch ``model.py``.

``cnnlab export --to torch`` saves the weights with ``torch.save(state_dict)`` and this
file beside them, so a PyTorch user needs neither cnnlab nor pickled classes::

    import torch
    from model import build
    model = build()
    model.load_state_dict(torch.load("model.pt"))

The network is an ``nn.Sequential`` of standard modules; the small module classes of
``cnnlab.interop.torch_modules`` that it needs (e.g. ``Residual``) are copied in as source.
Each call is written from the layer table (``torch_call``: the module a layer names and its
arguments), required arguments positional and the others only where they differ from the
module's defaults, so a new layer needs nothing here.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from typing import Any

import numpy as np

from cnnlab.interop.torch import to_torch, torch_call, torch_class
from cnnlab.interop.torch_modules import CUSTOM_PREFIX, HELPERS, torch_modules
from cnnlab.layers.base import Layer

INDENT = "    "


def torch_source(model: Layer, extra: dict[str, Any] | None = None) -> str:
    """The text of a ``model.py`` whose ``build()`` returns the equivalent ``nn.Module``.

    Args:
        model: the cnnlab model.
        extra: optional facts saved with the model (``input_shape``, ``classes``,
            ``normalization``); they become constants and notes in the file.

    Example:
        >>> import pytest; _ = pytest.importorskip("torch")
        >>> from cnnlab.interop.codegen import torch_source
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.layers.activations import ReLU
        >>> from cnnlab.layers.sequential import Sequential
        >>> print(torch_source(Sequential(Dense(4, 3), ReLU())).split("def build")[1])
        () -> nn.Module:
            \"\"\"The network with fresh weights; load the exported state_dict into it.\"\"\"
            model = nn.Sequential(
                nn.Linear(4, 3),
                nn.ReLU(),
            )
            return model.to(torch.float32)
        <BLANKLINE>
    """
    extra = extra or {}
    to_torch(model)  # its errors: a layer without a torch module, a dtype other than float32/64
    used: set[str] = set()
    body = _expr(model, 1, used)
    dtype = f"torch.{np.dtype(model.dtype).name}"  # to_torch keeps float32 or float64
    classes = [
        textwrap.dedent(inspect.getsource(cls)) for name, cls in vars(torch_modules()).items() if name in used
    ]
    helpers = [inspect.getsource(f) for f in HELPERS if any(f"{f.__name__}(" in c for c in classes)]

    notes = []
    if extra.get("input_shape"):
        shape = ", ".join(str(s) for s in extra["input_shape"])
        notes.append(f"Input: tensors of shape (N, {shape}), {dtype.removeprefix('torch.')}.")
    if extra.get("normalization"):
        notes.append("Normalize inputs as in training: x = (x - MEAN[c]) / STD[c] for each channel c.")
    constants = []
    if extra.get("input_shape"):
        constants.append(f"INPUT_SHAPE = {tuple(int(s) for s in extra['input_shape'])!r}")
    if extra.get("classes"):
        constants.append(f"CLASSES = {json.dumps([str(c) for c in extra['classes']])}")
    if extra.get("normalization"):
        norm = extra["normalization"]
        constants.append(f"MEAN = {[float(v) for v in norm['mean']]!r}")
        constants.append(f"STD = {[float(v) for v in norm['std']]!r}")

    lines = [
        '"""A PyTorch version of a cnnlab model, written by `cnnlab export --to torch`.',
        "",
        "Plain PyTorch: an nn.Sequential of standard modules, plus the small module classes",
        "below for cnnlab layers that torch.nn lacks. Load the exported weights with:",
        "",
        "    import torch",
        "    from model import build",
        "    model = build()",
        '    model.load_state_dict(torch.load("model.pt"))',
        "    model.eval()",
        *(["", *notes] if notes else []),
        '"""',
        "",
        "import torch",
    ]
    if any("F." in source for source in classes):
        lines.append("import torch.nn.functional as F")
    lines += ["from torch import nn", ""]
    if constants:
        lines += [*constants, ""]
    for source in helpers + classes:
        lines += ["", source.rstrip(), ""]
    lines += [
        "",
        "def build() -> nn.Module:",
        f'{INDENT}"""The network with fresh weights; load the exported state_dict into it."""',
        f"{INDENT}model = {body}",
        f"{INDENT}return model.to({dtype})",
        "",
    ]
    return "\n".join(lines)


def _pair_text(value: Any) -> str:
    """(3, 3) -> "3", (3, 5) -> "(3, 5)", "same" -> "'same'"."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    return repr(value)


def _expr(layer: Layer, depth: int, used: set[str]) -> str:
    """Python source that builds ``layer``'s torch module (``depth`` levels of indentation in build()).

    One line for a leaf module: required arguments positional, the others as keywords
    where they differ from the module's default. A module with children (``nn.Sequential``,
    ``Residual``) gets one line per child, keywords named.
    """
    path, args, kwargs = torch_call(layer)
    cls = torch_class(path)
    if path.startswith(CUSTOM_PREFIX):
        name = path.removeprefix(CUSTOM_PREFIX)  # its class is copied into model.py
        used.add(name)
    else:
        name = "nn." + path.removeprefix("torch.nn.")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    options = {k: v for k, v in kwargs.items() if k not in defaults or not _same(v, defaults[k])}
    pad = INDENT * (depth + 1)
    if args or any(_holds_layer(v) for v in options.values()):
        items = [_expr(child, depth + 1, used) for child in args]
        items += [f"{k}={_value(v, depth + 1, used)}" for k, v in options.items()]
        lines = "".join(f"{pad}{item},\n" for item in items)
        return f"{name}(\n{lines}{INDENT * depth})"
    required = [p.name for p in params if p.name not in defaults]
    parts, positional = [], True
    for i, (key, value) in enumerate(options.items()):
        positional = positional and i < len(required) and required[i] == key  # in signature order
        parts.append(_pair_text(value) if positional else f"{key}={_pair_text(value)}")
    return f"{name}({', '.join(parts)})"


def _same(value: Any, default: Any) -> bool:
    return _pair_text(value) == _pair_text(default)


def _holds_layer(value: Any) -> bool:
    """A layer, or a list/tuple/dict with one inside (a Graph's nodes)."""
    if isinstance(value, (list, tuple)):
        return any(_holds_layer(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_layer(v) for v in value.values())
    return isinstance(value, Layer)


def _value(value: Any, depth: int, used: set[str]) -> str:
    """Source for one argument; a list holding layers gets one line per item, e.g. a Graph's
    ``nodes=[{'name': 'b1', 'inputs': ['x'], 'module': nn.Conv2d(4, 3, 1)}, ...]``."""
    if isinstance(value, Layer):
        return _expr(value, depth, used)
    if isinstance(value, dict) and _holds_layer(value):
        return "{" + ", ".join(f"{k!r}: {_value(v, depth, used)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)) and _holds_layer(value):
        items = "".join(f"{INDENT * (depth + 1)}{_value(v, depth + 1, used)},\n" for v in value)
        return f"[\n{items}{INDENT * depth}]"
    return _pair_text(value)
