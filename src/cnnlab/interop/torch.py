"""The PyTorch bridge: ``to_torch(model)`` and ``from_torch(module)``, weights copied exactly.

cnnlab uses PyTorch's names, layouts and state_dict keys on purpose, so a conversion is a
one-to-one map of layers plus a copy of the arrays:

==========================  =========================================================
cnnlab                      PyTorch
==========================  =========================================================
Conv2D                      nn.Conv2d ("same" at stride > 1 or even kernel: ``Conv2dSame``)
MaxPool2D / AvgPool2D       nn.MaxPool2d / nn.AvgPool2d (every option)
GlobalAvgPool2D             ``GlobalAvgPool2d`` (mean over H and W)
Sigmoid, Tanh, ReLU         nn.Sigmoid, nn.Tanh, nn.ReLU
LeakyReLU, ELU              nn.LeakyReLU (cnnlab's default slope is 0.1), nn.ELU
Maxout                      ``Maxout``
Softmax                     nn.Softmax(dim=1)
Dense, Flatten, Dropout     nn.Linear, nn.Flatten, nn.Dropout
BatchNorm1D / BatchNorm2D   nn.BatchNorm1d / nn.BatchNorm2d (eps, momentum, running stats)
Residual                    ``Residual`` (attributes ``block`` and ``shortcut``)
Sequential                  nn.Sequential
==========================  =========================================================

The names in ``backquotes`` are the small modules of ``cnnlab.interop.torch_modules``.
Both directions keep the dtype (float32 or float64) and the train/eval mode. Dropout masks
come from each framework's own random generator, so only dropout differs between the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.interop.torch_modules import import_torch, torch_modules
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential


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


# ---- cnnlab -> torch ------------------------------------------------------------------------
def _module_for(layer: Layer) -> Any:
    """The torch module for one cnnlab layer (children converted recursively), weights not copied."""
    from torch import nn

    M = torch_modules()
    if isinstance(layer, Sequential):
        return nn.Sequential(*(_module_for(child) for child in layer.layers))
    if isinstance(layer, Residual):
        shortcut = None if layer.shortcut is None else _module_for(layer.shortcut)
        return M.Residual(_module_for(layer.block), shortcut)
    if isinstance(layer, Conv2D):
        args = (layer.in_channels, layer.out_channels, layer._kernel)
        # torch's own "same" only works at stride 1, and copies the input for even kernels.
        odd = all(d * (k - 1) % 2 == 0 for k, d in zip(layer._kernel, layer._dilation, strict=True))
        if layer.padding == "same" and (layer._stride != (1, 1) or not odd):
            return M.Conv2dSame(*args, stride=layer._stride, dilation=layer._dilation, bias=layer.bias)
        padding = "same" if layer.padding == "same" else layer._padding
        return nn.Conv2d(
            *args, stride=layer._stride, padding=padding, dilation=layer._dilation, bias=layer.bias
        )
    if isinstance(layer, MaxPool2D):
        return nn.MaxPool2d(layer._kernel, layer._step, layer._pad, ceil_mode=layer.ceil_mode)
    if isinstance(layer, AvgPool2D):
        return nn.AvgPool2d(layer._kernel, layer._step, layer._pad, layer.ceil_mode, layer.count_include_pad)
    if isinstance(layer, BatchNorm1D | BatchNorm2D):
        cls = nn.BatchNorm1d if isinstance(layer, BatchNorm1D) else nn.BatchNorm2d
        return cls(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if isinstance(layer, Dense):
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias)
    simple: dict[type[Layer], Callable[[Any], Any]] = {
        GlobalAvgPool2D: lambda _: M.GlobalAvgPool2d(),
        Sigmoid: lambda _: nn.Sigmoid(),
        Tanh: lambda _: nn.Tanh(),
        ReLU: lambda _: nn.ReLU(),
        LeakyReLU: lambda lay: nn.LeakyReLU(lay.negative_slope),
        ELU: lambda lay: nn.ELU(lay.alpha),
        Maxout: lambda lay: M.Maxout(lay.pieces),
        Softmax: lambda _: nn.Softmax(dim=1),
        Flatten: lambda _: nn.Flatten(),
        Dropout: lambda lay: nn.Dropout(lay.p),
    }
    if type(layer) not in simple:
        known = ", ".join(sorted(c.__name__ for c in (*simple, Sequential, Residual, Conv2D, Dense)))
        raise CnnlabError(f"to_torch: no PyTorch equivalent for {layer.name}. Supported layers: {known}")
    return simple[type(layer)](layer)


# ---- torch -> cnnlab ------------------------------------------------------------------------
def _single(values: tuple[int, ...] | int) -> int | tuple[int, int]:
    """(3, 3) -> 3, so a converted layer's repr reads like hand-written code."""
    if isinstance(values, int):
        return values
    a, b = (int(v) for v in values)
    return a if a == b else (a, b)


def _unsupported(module: Any, why: str) -> CnnlabError:
    return CnnlabError(f"from_torch: {module!r} has no cnnlab equivalent: {why}")


def _layer_for(module: Any) -> Layer:
    """The cnnlab layer for one torch module (children converted recursively), weights not copied."""
    from torch import nn

    M = torch_modules()
    if isinstance(module, nn.Sequential):
        return Sequential(*(_layer_for(child) for child in module))
    if isinstance(module, M.Residual):
        shortcut = module.shortcut
        if shortcut is None or isinstance(shortcut, nn.Identity):
            return Residual(_layer_for(module.block))
        return Residual(_layer_for(module.block), _layer_for(shortcut))
    if isinstance(module, nn.Conv2d):
        return _conv_for(module, same=isinstance(module, M.Conv2dSame))
    if isinstance(module, nn.MaxPool2d):
        if _single(module.dilation) != 1 or module.return_indices:
            raise _unsupported(module, "dilation and return_indices are not supported")
        stride = None if _single(module.stride) == _single(module.kernel_size) else _single(module.stride)
        return MaxPool2D(_single(module.kernel_size), stride, _single(module.padding), module.ceil_mode)
    if isinstance(module, nn.AvgPool2d):
        if module.divisor_override is not None:
            raise _unsupported(module, "divisor_override is not supported")
        stride = None if _single(module.stride) == _single(module.kernel_size) else _single(module.stride)
        return AvgPool2D(
            _single(module.kernel_size),
            stride,
            _single(module.padding),
            module.ceil_mode,
            module.count_include_pad,
        )
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        if not (module.affine and module.track_running_stats) or module.momentum is None:
            raise _unsupported(module, "needs affine=True, track_running_stats=True and a float momentum")
        cls = BatchNorm1D if isinstance(module, nn.BatchNorm1d) else BatchNorm2D
        return cls(module.num_features, eps=module.eps, momentum=module.momentum)
    if isinstance(module, nn.Linear):
        return Dense(module.in_features, module.out_features, bias=module.bias is not None)
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise _unsupported(module, "only start_dim=1, end_dim=-1 (flatten all but the batch axis)")
        return Flatten()
    if isinstance(module, nn.Softmax):
        if module.dim != 1:
            raise _unsupported(module, "cnnlab's Softmax is over axis 1 (dim=1)")
        return Softmax()
    simple: dict[type, Callable[[Any], Layer]] = {
        M.GlobalAvgPool2d: lambda _: GlobalAvgPool2D(),
        M.Maxout: lambda m: Maxout(m.pieces),
        nn.Sigmoid: lambda _: Sigmoid(),
        nn.Tanh: lambda _: Tanh(),
        nn.ReLU: lambda _: ReLU(),
        nn.LeakyReLU: lambda m: LeakyReLU(m.negative_slope),
        nn.ELU: lambda m: ELU(m.alpha),
        nn.Dropout: lambda m: Dropout(m.p),
    }
    if type(module) not in simple:
        raise _unsupported(
            module,
            "supported are nn.Sequential, Conv2d, MaxPool2d, AvgPool2d, BatchNorm1d/2d, Linear, "
            "Flatten, Softmax(dim=1), Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Dropout and "
            "cnnlab.interop.torch_modules' Conv2dSame, Maxout, GlobalAvgPool2d, Residual",
        )
    return simple[type(module)](module)


def _conv_for(module: Any, same: bool) -> Conv2D:
    if module.groups != 1 or module.padding_mode != "zeros":
        raise _unsupported(module, "only groups=1 and padding_mode='zeros'")
    padding = "same" if same else module.padding
    padding = padding if isinstance(padding, str) else _single(padding)
    return Conv2D(
        module.in_channels,
        module.out_channels,
        _single(module.kernel_size),
        stride=_single(module.stride),
        padding=padding,
        dilation=_single(module.dilation),
        bias=module.bias is not None,
    )
