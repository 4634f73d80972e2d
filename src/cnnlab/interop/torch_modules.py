"""The few PyTorch modules cnnlab needs that ``torch.nn`` lacks.

``to_torch`` maps most layers to a standard ``torch.nn`` module; these cover the rest:

- ``Conv2dSame``: TensorFlow/Keras "same" padding at any stride (``nn.Conv2d`` allows
  ``padding="same"`` only at stride 1). It pads ``ceil``-style, the odd pixel at the
  bottom/right, exactly like cnnlab's ``Conv2D(padding="same")``.
- ``Maxout``: the max over groups of ``pieces`` consecutive channels.
- ``GlobalAvgPool2d``: ``(N, C, H, W) -> (N, C)`` in one module, so ``Sequential`` indices
  (and so the state_dict keys) stay the same as cnnlab's.
- ``Residual``: ``block(x) + shortcut(x)`` with attributes ``block`` and ``shortcut``, so
  the keys are ``"block.0.weight"`` and ``"shortcut.0.weight"`` as in cnnlab.
- ``Conv1dSame``, ``GlobalMaxPool1d``, ``ChannelsFirstEmbedding``: the text layers
  (issue 27): "same" at any stride in 1-D; max over time, (N, C, L) -> (N, C); and
  ``nn.Embedding`` whose output is channels-first, (N, L) ids -> (N, D, L), as cnnlab's.
  ``MaskedMaxPool1d``: max over time over the positions of real tokens, (features, ids) -> (N, C).
- ``PaddedMaxPool2d``, ``PaddedAvgPool2d``: pooling with ONNX's asymmetric ``pads`` (top,
  left, bottom, right), which ``nn.MaxPool2d``/``nn.AvgPool2d`` lack (issue 26): an explicit
  pad to the windows' extent, then a plain pool; the average divides by PyTorch's count.
- ``GraphModule``, ``Concat``, ``Add``: a cnnlab ``Graph`` (issue 26). ``GraphModule`` is an
  ``nn.ModuleDict`` of the node modules (so the state_dict keys are cnnlab's,
  ``"stem.weight"``, ``"b2.0.weight"``) whose ``forward`` runs them in order, feeding each
  the tensors its node reads; ``Concat`` is ``torch.cat``, ``Add`` the sum ``x0 + x1 + ...``.
- ``ChannelSlice``: ``x[:, start:stop]``, ShuffleNetV2's channel split (issue 26).

PyTorch is optional, so the classes are built on first use by ``torch_modules()`` (importing
``cnnlab.interop`` never imports torch). The layer table names them by path
(``"cnnlab.interop.torch_modules.Maxout"``). ``cnnlab export --to torch`` copies their source,
and that of the plain functions in ``HELPERS`` they call, into the generated ``model.py``,
so keep them plain PyTorch code.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.utils import same_padding

#: How the layer table names the classes below: CUSTOM_PREFIX + class name.
CUSTOM_PREFIX = "cnnlab.interop.torch_modules."


def window_pads(size, kernel, stride, pad, pad_end, ceil_mode):
    """(before, after) padding so that a floor-mode pool of the padded input has PyTorch's size.

    The size for pads (pad, pad_end) and ceil_mode, where the last window must start inside
    the input or the left padding; ``after`` is cut to what the last window reaches.
    """
    span = size + pad + pad_end - kernel  # >= 0 for every input the layer accepts
    # ceil without a negative division: the TorchScript exporter makes -(-a // b) a truncating Div
    out = ((span + stride - 1) // stride if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return pad, max((out - 1) * stride + kernel - size - pad, 0)


#: Plain functions the classes call (copied into a generated model.py beside them).
HELPERS = (same_padding, window_pads)


def import_torch() -> Any:
    """Import and return ``torch``, or raise the error that says how to install it."""
    try:
        import torch
    except ImportError:
        raise CnnlabError(
            "the PyTorch bridge needs PyTorch: pip install 'cnnlab[torch]' (or pip install torch)"
        ) from None
    return torch


@functools.cache
def torch_modules() -> SimpleNamespace:
    """Build (once) and return the classes named in this module's docstring (``.Conv2dSame``, ...).

    Example:
        >>> import pytest; torch = pytest.importorskip("torch")
        >>> from cnnlab.interop.torch_modules import torch_modules
        >>> M = torch_modules()
        >>> M.Maxout(2)(torch.arange(8.0).reshape(1, 8)).tolist()
        [[1.0, 3.0, 5.0, 7.0]]
        >>> M.Conv2dSame(1, 1, 3, stride=2)(torch.zeros(1, 1, 7, 7)).shape
        torch.Size([1, 1, 4, 4])
    """
    torch = import_torch()
    import torch.nn.functional as F
    from torch import nn

    class Conv2dSame(nn.Conv2d):
        """nn.Conv2d with TensorFlow's "same" padding at any stride: H_out = ceil(H / stride).

        Total padding per axis: max((H_out - 1)*stride + dilation*(kernel - 1) + 1 - H, 0),
        half before, the odd one extra after (bottom/right): ``same_padding``.
        """

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, bias=True, groups=1):
            super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias=bias)

        def forward(self, x):
            H, W = x.shape[-2:]
            top, bottom = same_padding(H, self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(W, self.kernel_size[1], self.stride[1], self.dilation[1])
            return super().forward(F.pad(x, (left, right, top, bottom)))

    class Maxout(nn.Module):
        """Max over groups of `pieces` consecutive channels: (N, C*pieces, ...) -> (N, C, ...)."""

        def __init__(self, pieces=2):
            super().__init__()
            self.pieces = pieces

        def forward(self, x):
            groups = x.unflatten(1, (-1, self.pieces))  # (N, C, pieces, ...)
            return groups.max(dim=2).values  # on ties the gradient goes to the first piece

        def extra_repr(self):
            return f"pieces={self.pieces}"

    class GlobalAvgPool2d(nn.Module):
        """The mean of each feature map: (N, C, H, W) -> (N, C)."""

        def forward(self, x):
            return x.mean(dim=(2, 3))

    class Residual(nn.Module):
        """y = block(x) + shortcut(x); shortcut None is the identity (He et al., 2016)."""

        def __init__(self, block, shortcut=None):
            super().__init__()
            self.block = block
            self.shortcut = shortcut

        def forward(self, x):
            skip = x if self.shortcut is None else self.shortcut(x)
            return self.block(x) + skip

    class Conv1dSame(nn.Conv1d):
        """nn.Conv1d with TensorFlow's "same" padding at any stride: L_out = ceil(L / stride)."""

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1, bias=True):
            super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, bias=bias)

        def forward(self, x):
            left, right = same_padding(x.shape[-1], self.kernel_size[0], self.stride[0], self.dilation[0])
            return super().forward(F.pad(x, (left, right)))

    class GlobalMaxPool1d(nn.Module):
        """Max over time: (N, C, L) -> (N, C); the gradient goes to the first max."""

        def forward(self, x):
            return x.max(dim=2).values

    class MaskedMaxPool1d(nn.Module):
        """Max over time over the positions whose token id is not ``pad_id``: (features, ids) -> (N, C)."""

        def __init__(self, pad_id=0):
            super().__init__()
            self.pad_id = pad_id

        def forward(self, x, ids):
            real = ids[:, : x.shape[2]] != self.pad_id  # (N, L_out): the window starts at a real token
            real = torch.cat([real[:, :1] | ~real.any(dim=1, keepdim=True), real[:, 1:]], dim=1)
            return x.masked_fill(~real[:, None, :], float("-inf")).max(dim=2).values

        def extra_repr(self):
            return f"pad_id={self.pad_id}"

    class ChannelsFirstEmbedding(nn.Embedding):
        """nn.Embedding with channels-first output: (N, L) ids -> (N, D, L), ready for nn.Conv1d."""

        def forward(self, x):
            return super().forward(x).transpose(1, 2)

    class PaddedMaxPool2d(nn.Module):
        """Max pooling with asymmetric pads (top, left, bottom, right), padding counting as -inf."""

        def __init__(self, kernel_size, stride=None, pads=(0, 0, 0, 0), ceil_mode=False):
            super().__init__()
            self.kernel_size = nn.modules.utils._pair(kernel_size)
            self.stride = nn.modules.utils._pair(kernel_size if stride is None else stride)
            self.pads, self.ceil_mode = tuple(pads), ceil_mode

        def forward(self, x):
            (KH, KW), (SH, SW), (t, l, b, r) = self.kernel_size, self.stride, self.pads
            top, bottom = window_pads(x.shape[-2], KH, SH, t, b, self.ceil_mode)
            left, right = window_pads(x.shape[-1], KW, SW, l, r, self.ceil_mode)
            x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
            return F.max_pool2d(x, self.kernel_size, self.stride)

        def extra_repr(self):
            return f"{self.kernel_size}, stride={self.stride}, pads={self.pads}, ceil_mode={self.ceil_mode}"

    class PaddedAvgPool2d(nn.Module):
        """Average pooling with asymmetric pads: window sums over PyTorch's divisor (the window
        clipped to the padded input with count_include_pad, to the input without)."""

        def __init__(
            self, kernel_size, stride=None, pads=(0, 0, 0, 0), ceil_mode=False, count_include_pad=True
        ):
            super().__init__()
            self.kernel_size = nn.modules.utils._pair(kernel_size)
            self.stride = nn.modules.utils._pair(kernel_size if stride is None else stride)
            self.pads, self.ceil_mode, self.count_include_pad = tuple(pads), ceil_mode, count_include_pad

        def forward(self, x):
            (KH, KW), (SH, SW), (t, l, b, r) = self.kernel_size, self.stride, self.pads
            H, W = x.shape[-2:]
            top, bottom = window_pads(H, KH, SH, t, b, self.ceil_mode)
            left, right = window_pads(W, KW, SW, l, r, self.ceil_mode)
            total = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), self.kernel_size, self.stride)
            ones = torch.ones((1, 1, H, W), dtype=x.dtype, device=x.device)
            if self.count_include_pad:  # the pads count, up to the end of the padded input
                mask = F.pad(F.pad(ones, (l, r, t, b), value=1.0), (0, right - r, 0, bottom - b))
            else:
                mask = F.pad(ones, (left, right, top, bottom))
            return total / F.avg_pool2d(mask, self.kernel_size, self.stride)

        def extra_repr(self):
            return f"{self.kernel_size}, stride={self.stride}, pads={self.pads}, ceil_mode={self.ceil_mode}"

    class Concat(nn.Module):
        """torch.cat of the inputs along ``dim`` (cnnlab's Concat)."""

        def __init__(self, dim=1):
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self):
            return f"dim={self.dim}"

    class Add(nn.Module):
        """The sum of the inputs, left to right (cnnlab's Add)."""

        def forward(self, x, *more):
            for other in more:
                x = x + other
            return x

    class ChannelSlice(nn.Module):
        """Channels ``start`` to ``stop`` of the input, ``x[:, start:stop]`` (cnnlab's ChannelSlice)."""

        def __init__(self, start, stop):
            super().__init__()
            self.start, self.stop = start, stop

        def forward(self, x):
            return x[:, self.start : self.stop]

        def extra_repr(self):
            return f"start={self.start}, stop={self.stop}"

    class GraphModule(nn.ModuleDict):
        """Modules wired as a graph: each node applies its module to the tensors it reads.

        ``nodes`` lists ``{"name", "inputs", "module"}`` in an order where every node comes
        after the nodes it reads; ``inputs`` names graph inputs or earlier nodes. ``forward``
        returns the node named ``output``.
        """

        def __init__(self, inputs, nodes, output):
            super().__init__({node["name"]: node["module"] for node in nodes})
            self.graph_inputs = list(inputs)
            self.graph_edges = {node["name"]: list(node["inputs"]) for node in nodes}
            self.graph_output = output

        def forward(self, x, *more):  # x first: torch.export matches dynamic shapes to x
            values = dict(zip(self.graph_inputs, (x, *more), strict=True))
            for name, module in self.items():
                values[name] = module(*(values[n] for n in self.graph_edges[name]))
            return values[self.graph_output]

    return SimpleNamespace(
        Concat=Concat,
        Add=Add,
        GraphModule=GraphModule,
        Conv2dSame=Conv2dSame,
        Maxout=Maxout,
        GlobalAvgPool2d=GlobalAvgPool2d,
        Residual=Residual,
        Conv1dSame=Conv1dSame,
        GlobalMaxPool1d=GlobalMaxPool1d,
        MaskedMaxPool1d=MaskedMaxPool1d,
        ChannelsFirstEmbedding=ChannelsFirstEmbedding,
        PaddedMaxPool2d=PaddedMaxPool2d,
        PaddedAvgPool2d=PaddedAvgPool2d,
        ChannelSlice=ChannelSlice,
    )
