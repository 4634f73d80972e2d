"""Write a cnnlab model as a readable, standalone PyTorch ``model.py``.

``cnnlab export --to torch`` saves the weights with ``torch.save(state_dict)`` and this
file beside them, so a PyTorch user needs neither cnnlab nor pickled classes::

    import torch
    from model import build
    model = build()
    model.load_state_dict(torch.load("model.pt"))

The network is an ``nn.Sequential`` of standard modules; the small module classes of
``cnnlab.interop.torch_modules`` that it needs (e.g. ``Residual``) are copied in as source.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from typing import Any

import numpy as np

from cnnlab.interop.torch import to_torch
from cnnlab.interop.torch_modules import torch_modules
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
    module = to_torch(model)
    used: set[str] = set()
    body = _expr(module, 1, used)
    dtype = f"torch.{np.dtype(model.dtype).name}"  # to_torch keeps float32 or float64
    M = torch_modules()
    classes = [textwrap.dedent(inspect.getsource(getattr(M, name))) for name in _CLASS_ORDER if name in used]

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
    if "Conv2dSame" in used:
        lines.append("import torch.nn.functional as F")
    lines += ["from torch import nn", ""]
    if constants:
        lines += [*constants, ""]
    for source in classes:
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


_CLASS_ORDER = ("Conv2dSame", "Maxout", "GlobalAvgPool2d", "Residual")


def _pair_text(value: Any) -> str:
    """(3, 3) -> "3", (3, 5) -> "(3, 5)", "same" -> "'same'"."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    return repr(value)


def _call(name: str, args: list[str], options: dict[str, Any], defaults: dict[str, Any]) -> str:
    parts = list(args)
    for key, value in options.items():
        if key in defaults and _pair_text(value) == _pair_text(defaults[key]):
            continue
        parts.append(f"{key}={_pair_text(value)}")
    return f"{name}({', '.join(parts)})"


def _expr(module: Any, depth: int, used: set[str]) -> str:
    """Python source that builds ``module`` (``depth`` levels of indentation inside build())."""
    from torch import nn

    M = torch_modules()
    pad = INDENT * (depth + 1)
    if isinstance(module, nn.Sequential):
        items = "".join(f"{pad}{_expr(child, depth + 1, used)},\n" for child in module)
        return f"nn.Sequential(\n{items}{INDENT * depth})"
    if isinstance(module, M.Residual):
        used.add("Residual")
        block = _expr(module.block, depth + 1, used)
        shortcut = "None" if module.shortcut is None else _expr(module.shortcut, depth + 1, used)
        return f"Residual(\n{pad}block={block},\n{pad}shortcut={shortcut},\n{INDENT * depth})"
    if isinstance(module, nn.Conv2d):
        same = isinstance(module, M.Conv2dSame)
        if same:
            used.add("Conv2dSame")
        options: dict[str, Any] = {"kernel_size": module.kernel_size, "stride": module.stride}
        if not same:
            options["padding"] = module.padding
        options |= {"dilation": module.dilation, "bias": module.bias is not None}
        defaults: dict[str, Any] = {"stride": 1, "padding": 0, "dilation": 1, "bias": True}
        name = "Conv2dSame" if same else "nn.Conv2d"
        return _call(name, [str(module.in_channels), str(module.out_channels)], options, defaults)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        options = {"kernel_size": module.kernel_size, "stride": module.stride, "padding": module.padding}
        options["ceil_mode"] = module.ceil_mode
        defaults = {"stride": module.kernel_size, "padding": 0, "ceil_mode": False}
        if isinstance(module, nn.AvgPool2d):
            options["count_include_pad"] = module.count_include_pad
            defaults["count_include_pad"] = True
        return _call(f"nn.{type(module).__name__}", [], options, defaults)
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        options = {"eps": module.eps, "momentum": module.momentum}
        return _call(
            f"nn.{type(module).__name__}", [str(module.num_features)], options, {"eps": 1e-5, "momentum": 0.1}
        )
    if isinstance(module, nn.Linear):
        args = [str(module.in_features), str(module.out_features)]
        return _call("nn.Linear", args, {"bias": module.bias is not None}, {"bias": True})
    if isinstance(module, nn.LeakyReLU):
        return f"nn.LeakyReLU(negative_slope={module.negative_slope!r})"
    if isinstance(module, nn.ELU):
        return _call("nn.ELU", [], {"alpha": module.alpha}, {"alpha": 1.0})
    if isinstance(module, nn.Softmax):
        return f"nn.Softmax(dim={module.dim})"
    if isinstance(module, nn.Dropout):
        return f"nn.Dropout(p={module.p!r})"
    if isinstance(module, M.Maxout):
        used.add("Maxout")
        return f"Maxout(pieces={module.pieces})"
    if isinstance(module, M.GlobalAvgPool2d):
        used.add("GlobalAvgPool2d")
        return "GlobalAvgPool2d()"
    if isinstance(module, nn.Sigmoid | nn.Tanh | nn.ReLU | nn.Flatten):
        return f"nn.{type(module).__name__}()"
    raise TypeError(
        f"torch_source: no source template for {type(module).__name__}"
    )  # to_torch never makes one
