"""Conv2D: the convolution layer (filters slid over the input, one feature map each)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, ShapeError, check_int, int_pair
from cnnlab.functional import conv as conv_kernels
from cnnlab.functional.conv import ConvWorkspace
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.grouped_conv import (
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
    grouped_conv2d_backward,
    grouped_conv2d_forward,
)
from cnnlab.init import RngLike, make_rng, torch_default_uniform
from cnnlab.layers.base import Layer, TorchSpec, config_int, single, unsupported_torch
from cnnlab.utils import same_padding

PADDING_MODES = ("valid", "same")


def conv_axis(size: int, K: int, S: int, P: int, D: int, same: bool = False) -> tuple[int, str]:
    """The output length along one axis and the lecture's formula with numbers (Conv2D, Conv1D).

    For a kernel that fits the padded input: the layers check that first (each words its error).

    Example:
        >>> conv_axis(28, 3, 1, 1, 1)
        (28, 'floor((28 - 3 + 2*1) / 1) + 1 = 28')
        >>> conv_axis(28, 3, 2, 0, 1, same=True)
        (14, 'same: ceil(28 / 2) = 14')
    """
    if same:
        out = math.ceil(size / S)
        return out, f"same: ceil({size} / {S}) = {out}"
    eff = D * (K - 1) + 1
    out = (size - eff + 2 * P) // S + 1
    text = f"floor(({size} - {eff} + 2*{P}) / {S}) + 1 = {out}"
    if D > 1:
        text += f" (effective kernel {D}*({K}-1)+1 = {eff})"
    return out, text


def conv_repr(layer: Layer, defaults: dict[str, Any]) -> str:
    """PyTorch's style: channels positional, kernel_size named, other options only if not default."""
    config = layer.get_config()
    parts = [str(config.pop("in_channels")), str(config.pop("out_channels"))]
    parts.append(f"kernel_size={config.pop('kernel_size')!r}")
    parts += [f"{k}={v!r}" for k, v in config.items() if v != defaults.get(k)]
    return f"{layer.name}({', '.join(parts)})"


class Conv2D(Layer):
    """2-D convolution over NCHW input (cross-correlation, as in every DL framework).

    Each of the ``out_channels`` filters (C_in x KH x KW) slides over the zero-padded
    input with the given stride; at each location the dot product of window and filter,
    plus the bias, is one pixel of that filter's feature map.

    That sentence, as code: ``cnnlab.functional.reference_conv.conv2d_forward_loop`` (and
    ``conv2d_backward_loop``), plain loops a learner can read. This layer runs the fast
    version (im2col + one matrix product, ``cnnlab.functional.conv``); the tests hold the two
    to the same numbers.

    Args:
        in_channels: channels of the input (C_in).
        out_channels: number of filters, i.e. channels of the output (C_out).
        kernel_size: filter size, int or (KH, KW).
        stride: step of the filter, int or (SH, SW).
        padding: zeros added around the input: int, (PH, PW), "valid" (none) or "same"
            (output = ceil(input / stride), TensorFlow/Keras rule: total padding
            max((out-1)*S + D*(K-1) + 1 - H, 0), the odd one extra at the bottom/right).
        dilation: spacing between filter taps, int or pair; the effective kernel is D*(K-1)+1.
        groups: split input channels and filters into this many groups; filter group k sees
            only input group k (both channel counts must divide by it). 1 is the ordinary
            convolution; ``groups=in_channels`` is the depthwise convolution of MobileNet
            (each channel filtered on its own, ``out_channels/in_channels`` filters each).
            The cost and the weights are 1/groups of the full convolution's.
        bias: add a learned bias per filter.
        rng: seed or Generator for the initial weights.

    Weights: ``weight`` (C_out, C_in/groups, KH, KW) and ``bias`` (C_out,), float32, drawn from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in/groups*KH*KW (PyTorch's default).
    Grouped and depthwise kernels: ``cnnlab.functional.grouped_conv``.

    Attributes:
        needs_input_grad: when False (the first layer of a network) ``backward`` skips
            dL/dx, still writes the weight gradients, and returns None.

    Shape:
        - Input: (N, C_in, H, W)
        - Weight: (C_out, C_in/groups, KH, KW)
        - Output: (N, C_out, H_out, W_out) with
          H_out = floor((H + 2*P - D*(K-1) - 1) / S) + 1, for D=1: floor((H - K + 2*P) / S) + 1
          (W_out alike); with padding="same": H_out = ceil(H / S).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.conv import Conv2D
        >>> conv = Conv2D(1, 32, kernel_size=3, padding=1, rng=0)
        >>> conv
        Conv2D(1, 32, kernel_size=3, padding=1)
        >>> conv.forward(np.zeros((2, 1, 28, 28), np.float32)).shape
        (2, 32, 28, 28)
        >>> conv.formula((2, 1, 28, 28))
        'floor((28 - 3 + 2*1) / 1) + 1 = 28'
        >>> depthwise = Conv2D(32, 32, 3, padding=1, groups=32, rng=0)  # MobileNet's 3x3
        >>> depthwise.params["weight"].shape
        (32, 1, 3, 3)
    """

    needs_input_grad: bool = True
    torch = TorchSpec(
        "torch.nn.Conv2d", also=("cnnlab.interop.torch_modules.Conv2dSame",), onnx_ops=("Conv",)
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            check_int("Conv2D", arg, value)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2D: argument `groups` must divide in_channels={in_channels} and "
                f"out_channels={out_channels}. Received: groups={groups}"
            )
        self.groups = int(groups)
        self._kernel = int_pair("Conv2D", "kernel_size", kernel_size)
        self._stride = int_pair("Conv2D", "stride", stride)
        self._dilation = int_pair("Conv2D", "dilation", dilation)
        if isinstance(padding, str) and padding.lower() in PADDING_MODES:
            padding = padding.lower()
            self._padding: tuple[int, int] | str = padding if padding == "same" else (0, 0)
        else:  # other strings get the message that lists the modes
            self._padding = int_pair("Conv2D", "padding", padding, 0, alternatives=PADDING_MODES)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        # Stored as given (lists from JSON configs become tuples), so repr shows the user's words.
        self.kernel_size, self.stride, self.padding, self.dilation = (
            tuple(v) if isinstance(v, list) else v for v in (kernel_size, stride, padding, dilation)
        )
        self.bias = bool(bias)
        self.needs_input_grad = True
        self._workspace = ConvWorkspace()
        self._group_workspaces = [ConvWorkspace() for _ in range(self.groups if self._grouped else 0)]

        KH, KW = self._kernel
        fan_in = self.in_channels // self.groups * KH * KW
        gen = make_rng(rng)
        self.params["weight"] = torch_default_uniform(
            (self.out_channels, self.in_channels // self.groups, KH, KW), fan_in, gen
        )
        if self.bias:
            self.params["bias"] = torch_default_uniform((self.out_channels,), fan_in, gen)

    def __repr__(self) -> str:
        return conv_repr(self, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True})

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments; ``groups`` only when not 1 (ordinary convs' files stay as they were)."""
        config = super().get_config()
        if self.groups == 1:
            del config["groups"]
        return config

    @property
    def _depthwise(self) -> bool:
        """One input channel per group (groups == in_channels > 1): the tap-loop kernel."""
        return self.groups > 1 and self.groups == self.in_channels

    @property
    def _grouped(self) -> bool:
        """Several input channels per group: one im2col convolution per group."""
        return self.groups > 1 and not self._depthwise

    # ---- sizes ------------------------------------------------------------------------
    def _pads(self, H: int, W: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) for an H x W input."""
        if not isinstance(self._padding, str):  # "same" is the only string kept here
            PH, PW = self._padding
            return PH, PH, PW, PW
        top, bottom = same_padding(H, self._kernel[0], self._stride[0], self._dilation[0])
        left, right = same_padding(W, self._kernel[1], self._stride[1], self._dilation[1])
        return top, bottom, left, right  # the odd one goes bottom/right (TF/Keras)

    # ---- the PyTorch table entry --------------------------------------------------------
    def torch_module(self) -> str | None:
        """nn.Conv2d, or ``Conv2dSame`` for "same" where torch's own does not fit.

        torch's ``padding="same"`` only works at stride 1, and copies the input for even
        (effective) kernels, whose padding is asymmetric.
        """
        odd = all(d * (k - 1) % 2 == 0 for k, d in zip(self._kernel, self._dilation, strict=True))
        if self.padding == "same" and (self._stride != (1, 1) or not odd):
            return "cnnlab.interop.torch_modules.Conv2dSame"
        return "torch.nn.Conv2d"

    def torch_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self._kernel,
            "stride": self._stride,
        }
        if self.torch_module() == "torch.nn.Conv2d":  # Conv2dSame always pads "same"
            args["padding"] = "same" if self.padding == "same" else self._padding
        args |= {"dilation": self._dilation} | ({"groups": self.groups} if self.groups != 1 else {})
        return args | {"bias": self.bias}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.padding_mode != "zeros":
            raise unsupported_torch(module, "only padding_mode='zeros'")
        same = any(c.__name__ == "Conv2dSame" for c in type(module).__mro__)
        return {
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": single(module.kernel_size),
            "stride": single(module.stride),
            "padding": "same" if same else single(module.padding),
            "dilation": single(module.dilation),
            **({"groups": module.groups} if module.groups != 1 else {}),
            "bias": module.bias is not None,
        }

    def _sizes(self, input_shape: tuple[int, ...]) -> list[tuple[int, str]]:
        """(output size, formula text) for H and W; raises ShapeError when the kernel does not fit."""
        self._check_input(
            np.broadcast_to(np.float32(0), tuple(input_shape)), ndims=(4,), channels=self.in_channels
        )
        H, W = input_shape[2], input_shape[3]
        pads, same = self._pads(H, W), self._padding == "same"
        result = []
        for axis, size, p, k, s, d in zip(
            "HW", (H, W), (pads[0], pads[2]), self._kernel, self._stride, self._dilation, strict=True
        ):
            eff = d * (k - 1) + 1
            if not same and size + 2 * p < eff:
                raise ShapeError(
                    f"Conv2D: kernel (effective size {eff}) is larger than the padded input: "
                    f"{axis} + 2P = {size} + 2*{p} = {size + 2 * p} < {eff}. Received: input shape "
                    f"{tuple(input_shape)}"
                )
            result.append(conv_axis(size, k, s, p, d, same))
        return result

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        (H_out, _), (W_out, _) = self._sizes(input_shape)
        return (input_shape[0], self.out_channels, H_out, W_out)

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        (_, fh), (_, fw) = self._sizes(input_shape)
        return fh if fh == fw else f"H: {fh}, W: {fw}"

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """2 * C_in/groups * KH * KW per output element (multiply-adds), plus one add for the bias."""
        n_out = math.prod(self.output_shape(input_shape)[1:])
        KH, KW = self._kernel
        return 2 * self.in_channels // self.groups * KH * KW * n_out + (n_out if self.bias else 0)

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """C_out * C_in/groups * KH * KW weights, plus C_out biases."""
        kernel = args.get("kernel_size")
        kernel = kernel if isinstance(kernel, (list, tuple)) else [kernel, kernel]
        out_channels = config_int(args.get("out_channels"))
        in_per_group = config_int(args.get("in_channels")) // max(config_int(args.get("groups", 1)), 1)
        count = out_channels * in_per_group * math.prod(config_int(k) for k in kernel)
        return count + (0 if args.get("bias", True) is False else out_channels)

    # ---- the two phases -------------------------------------------------------------
    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = conv(x, weight) + bias; the result is an NCHW view of CNHW memory."""
        self.output_shape(x.shape)  # checks rank, channels and that the kernel fits
        H, W = x.shape[2:]
        pads = self._pads(H, W)
        self._check_workspace(x.shape, pads, self.params["weight"].dtype)
        if self.groups > 1:
            return self._forward_groups(x, pads)
        y, saved = conv_kernels.conv2d_forward_saving(
            x,
            self.params["weight"],
            self.params.get("bias"),
            pads,
            self._stride,
            self._dilation,
            self._workspace,
        )  # (N, C_out, H_out, W_out)
        self._cache = saved  # the input, the geometry and the columns backward may reuse
        return y

    def _forward_groups(self, x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
        """Grouped convolution: the depthwise tap loop, or one im2col convolution per group."""
        weight, bias = self.params["weight"], self.params.get("bias")
        if self._depthwise:
            y = depthwise_conv2d_forward(x, weight, bias, pads, self._stride, self._dilation)
            self._cache = (x, pads, None)
        else:
            y, saved = grouped_conv2d_forward(
                x, weight, bias, self.groups, pads, self._stride, self._dilation, self._group_workspaces
            )
            self._cache = (x, pads, saved)  # one SavedConv per group: its backward reuses its columns
        return y  # (N, C_out, H_out, W_out)

    def _backward_groups(self, dy: np.ndarray) -> np.ndarray | None:
        x, pads, saved = self._cached()
        weight, geometry = self.params["weight"], (pads, self._stride, self._dilation)
        if saved is None:
            dx, dW, db = depthwise_conv2d_backward(dy, x, weight, *geometry, need_dx=self.needs_input_grad)
        else:
            dx, dW, db = grouped_conv2d_backward(dy, saved, weight, need_dx=self.needs_input_grad)
        self.grads["weight"] = dW  # (C_out, C_in/groups, KH, KW)
        if self.bias:
            self.grads["bias"] = db.astype(self.params["bias"].dtype, copy=False)  # (C_out,)
        return dx  # (N, C_in, H, W) or None

    def _check_workspace(self, shape: tuple[int, ...], pads: tuple[int, int, int, int], dtype: Any) -> None:
        """Refuse up front when ONE example's im2col workspace exceeds the budget.

        Larger batches are split into chunks by the kernel; a single example cannot be.
        """
        C_in, H, W = shape[1] // self.groups, shape[2], shape[3]  # one group's columns at a time
        (H_out, _), (W_out, _) = self._sizes(shape)
        (KH, KW), (Hp, Wp) = self._kernel, (H + pads[0] + pads[1], W + pads[2] + pads[3])
        need = (C_in * KH * KW * H_out * W_out + C_in * Hp * Wp) * np.dtype(dtype).itemsize
        budget = conv_kernels.WORKSPACE_BUDGET_BYTES
        if need > budget:
            raise CnnlabError(
                f"{self!r}: one example needs a {need / 2**20:,.1f} MiB im2col workspace "
                f"(columns {C_in}*{KH}*{KW} x {H_out}*{W_out} + padded input {C_in} x {Hp}*{Wp}, "
                f"{np.dtype(dtype)}) for input shape {tuple(shape)}, more than the budget of "
                f"{budget / 2**20:,.1f} MiB. Use less padding or smaller inputs, or raise the budget "
                "with cnnlab.functional.conv.set_workspace_budget"
            )

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # type: ignore[override]
        """Write grads["weight"] (and "bias"); return dL/dx, or None if not needs_input_grad."""
        if self.groups > 1:
            return self._backward_groups(dy)
        saved = self._cached()
        dx, dW, db = conv_kernels.conv2d_backward_saved(
            dy, saved, self.params["weight"], need_dx=self.needs_input_grad
        )
        # Weight sharing: dW and db are sums over every position and every sample.
        self.grads["weight"] = dW  # (C_out, C_in, KH, KW)
        if self.bias:
            self.grads["bias"] = db.astype(self.params["bias"].dtype, copy=False)  # (C_out,)
        return dx  # (N, C_in, H, W) or None
