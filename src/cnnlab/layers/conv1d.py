"""Conv1D: filters slid along one axis (time, or word position), one feature map each."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int, is_int
from cnnlab.functional.conv import ConvWorkspace
from cnnlab.functional.conv1d import conv1d_backward_saved, conv1d_forward_saving
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.init import RngLike, make_rng, torch_default_uniform
from cnnlab.layers.base import Layer, TorchSpec, config_int, unsupported_torch
from cnnlab.layers.conv import PADDING_MODES, conv_axis, conv_repr
from cnnlab.utils import same_padding


def one(value: Any) -> Any:
    """torch's 1-D sizes may be ints or 1-tuples ((3,) from nn.AvgPool1d): the int."""
    return value[0] if isinstance(value, (tuple, list)) else value


class Conv1D(Layer):
    """1-D convolution over (N, C, L) input (cross-correlation, as in every DL framework).

    Each of the ``out_channels`` filters (C_in x K) slides along the zero-padded sequence
    with the given stride; at each position the dot product of window and filter, plus the
    bias, is one value of that filter's feature map. In a text CNN (Kim, 2014) the channels
    are the embedding dimensions and a filter of width K is a detector of K-word phrases.

    Runs the 2-D im2col + GEMM kernels on a height-1 view (``cnnlab.functional.conv1d``);
    the readable loop version is ``conv1d_forward_loop`` / ``conv1d_backward_loop`` there.

    Args:
        in_channels: channels of the input (C_in), e.g. the embedding dimension.
        out_channels: number of filters (C_out).
        kernel_size: filter width K.
        stride: step of the filter.
        padding: zeros added on both sides: an int, "valid" (none) or "same"
            (L_out = ceil(L / S); total padding max((L_out-1)*S + D*(K-1) + 1 - L, 0), the odd
            one on the right, as ``nn.Conv1d(padding="same")`` at stride 1).
        dilation: spacing between filter taps; the effective width is D*(K-1)+1.
        bias: add a learned bias per filter.
        rng: seed or Generator for the initial weights.

    Weights: ``weight`` (C_out, C_in, K) and ``bias`` (C_out,) as in PyTorch, float32, from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C_in*K (PyTorch's default).

    Attributes:
        needs_input_grad: when False (nothing before it needs dL/dx) ``backward`` skips it,
            still writes the weight gradients, and returns None.

    Shape:
        - Input: (N, C_in, L)
        - Output: (N, C_out, L_out) with the lecture's formula in 1-D:
          L_out = floor((L - D*(K-1) - 1 + 2*P) / S) + 1, for D=1: floor((L - K + 2*P) / S) + 1;
          with padding="same": L_out = ceil(L / S).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.conv1d import Conv1D
        >>> conv = Conv1D(300, 100, kernel_size=3, rng=0)
        >>> conv
        Conv1D(300, 100, kernel_size=3)
        >>> conv.forward(np.zeros((2, 300, 50), np.float32)).shape
        (2, 100, 48)
        >>> conv.formula((2, 300, 50))
        'floor((50 - 3 + 2*0) / 1) + 1 = 48'
    """

    needs_input_grad: bool = True
    torch = TorchSpec(
        "torch.nn.Conv1d", also=("cnnlab.interop.torch_modules.Conv1dSame",), onnx_ops=("Conv",)
    )

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        dilation: int = 1,
        bias: bool = True,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_int("Conv1D", "in_channels", in_channels)
        self.out_channels = check_int("Conv1D", "out_channels", out_channels)
        self.kernel_size = check_int("Conv1D", "kernel_size", kernel_size)
        self.stride = check_int("Conv1D", "stride", stride)
        self.dilation = check_int("Conv1D", "dilation", dilation)
        if isinstance(padding, str) and padding.lower() in PADDING_MODES:
            padding = padding.lower()
        elif not is_int(padding) or int(padding) < 0:
            raise arg_error("Conv1D", "padding", "an int >= 0, 'valid' or 'same'", padding)
        self.padding: int | str = padding if isinstance(padding, str) else int(padding)
        if not isinstance(bias, (bool, np.bool_)):
            raise arg_error("Conv1D", "bias", "True or False", bias)
        self.bias = bool(bias)
        self.needs_input_grad = True
        self._workspace = ConvWorkspace()

        fan_in = self.in_channels * self.kernel_size
        gen = make_rng(rng)
        self.params["weight"] = torch_default_uniform(
            (self.out_channels, self.in_channels, self.kernel_size), fan_in, gen
        )
        if self.bias:
            self.params["bias"] = torch_default_uniform((self.out_channels,), fan_in, gen)

    def __repr__(self) -> str:
        return conv_repr(self, {"stride": 1, "padding": 0, "dilation": 1, "bias": True})

    # ---- the PyTorch table entry --------------------------------------------------------
    def torch_module(self) -> str | None:
        """nn.Conv1d, or ``Conv1dSame`` for "same" at stride > 1 (torch's "same" is stride 1 only)
        and for an even effective width (torch's pads it by copying the input, with a warning)."""
        if self.padding == "same" and (self.stride != 1 or self.dilation * (self.kernel_size - 1) % 2):
            return "cnnlab.interop.torch_modules.Conv1dSame"
        return "torch.nn.Conv1d"

    def torch_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
        }
        if self.torch_module() == "torch.nn.Conv1d":  # Conv1dSame always pads "same"
            args["padding"] = "same" if self.padding == "same" else self.pads(0)[0]  # "valid": 0
        return args | {"dilation": self.dilation, "bias": self.bias}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.groups != 1 or module.padding_mode != "zeros":
            raise unsupported_torch(module, "only groups=1 and padding_mode='zeros'")
        same = any(c.__name__ == "Conv1dSame" for c in type(module).__mro__)
        padding = module.padding if isinstance(module.padding, str) else one(module.padding)
        return {
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": one(module.kernel_size),
            "stride": one(module.stride),
            "padding": "same" if same else padding,
            "dilation": one(module.dilation),
            "bias": module.bias is not None,
        }

    # ---- sizes ------------------------------------------------------------------------
    def pads(self, length: int) -> tuple[int, int]:
        """(left, right) zeros for a sequence of ``length``."""
        if self.padding == "same":  # the odd one on the right
            return same_padding(length, self.kernel_size, self.stride, self.dilation)
        p = 0 if self.padding == "valid" else int(self.padding)
        return p, p

    def _size(self, input_shape: tuple[int, ...]) -> tuple[int, str]:
        """(L_out, the formula with numbers); raises ShapeError when the input does not fit."""
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ShapeError(f"Conv1D: input must have shape (N, C, L). Received: shape {shape}")
        if shape[1] != self.in_channels:
            raise ShapeError(
                f"Conv1D: input must have {self.in_channels} channels at axis 1 "
                f"(in_channels={self.in_channels}). Received: shape {shape}"
            )
        L, K, S, D = shape[2], self.kernel_size, self.stride, self.dilation
        if self.padding == "same":
            return conv_axis(L, K, S, 0, D, same=True)
        P = self.pads(L)[0]
        eff = D * (K - 1) + 1
        if L + 2 * P < eff:
            raise ShapeError(
                f"Conv1D: kernel (effective size {eff}) is longer than the padded input: "
                f"L + 2P = {L} + 2*{P} = {L + 2 * P} < {eff}; "
                f"L_out = floor(({L} - {eff} + 2*{P}) / {S}) + 1 would be < 1. Received: input shape {shape}"
            )
        return conv_axis(L, K, S, P, D)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        L_out, _ = self._size(input_shape)
        return (input_shape[0], self.out_channels, L_out)

    def formula(self, input_shape: tuple[int, ...]) -> str | None:
        return self._size(input_shape)[1]

    def output_lengths(self, lengths: np.ndarray, input_length: int) -> np.ndarray:
        """Per example, how many output positions have a window holding a real token.

        For sequences of ``lengths`` real tokens padded (on the right) to ``input_length``:
        output t reads from input position t*S - P_left onwards, so the first
        min(L_out, (len - 1 + P_left) // S + 1) outputs hold at least one real token. Pass
        the result to ``GlobalMaxPool1D`` as ``lengths`` so that windows over padding alone
        never win (at least 1 per example).

        Example:
            >>> Conv1D(4, 2, 3, rng=0).output_lengths(np.array([1, 5, 10]), 10).tolist()
            [1, 5, 8]
        """
        L_out = self.output_shape((1, self.in_channels, input_length))[2]
        left = self.pads(input_length)[0]
        starts = (np.maximum(np.asarray(lengths), 1) - 1 + left) // self.stride + 1
        return np.minimum(starts, L_out)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """2 * C_in * K per output element (multiply-adds), plus one add for the bias."""
        n_out = math.prod(self.output_shape(input_shape)[1:])
        return 2 * self.in_channels * self.kernel_size * n_out + (n_out if self.bias else 0)

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """C_out * C_in * K weights, plus C_out biases."""
        out_channels = config_int(args.get("out_channels"))
        count = out_channels * config_int(args.get("in_channels")) * config_int(args.get("kernel_size"))
        return count + (0 if args.get("bias", True) is False else out_channels)

    # ---- the two phases -------------------------------------------------------------
    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = conv1d(x, weight) + bias; the result is an (N, C, L) view of (C, N, L) memory."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Conv1D: input must be a numpy.ndarray. Received: {type(x).__name__}")
        self.output_shape(x.shape)  # checks rank, channels and that the kernel fits
        pads = self.pads(x.shape[2])
        y, saved = conv1d_forward_saving(
            x,
            self.params["weight"],
            self.params.get("bias"),
            pads,
            self.stride,
            self.dilation,
            self._workspace,
        )  # (N, C_out, L_out)
        self._cache = saved  # the input, the geometry and the columns backward may reuse
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray | None:  # type: ignore[override]
        """Write grads["weight"] (and "bias"); return dL/dx, or None if not needs_input_grad."""
        saved = self._cached()
        dx, dW, db = conv1d_backward_saved(dy, saved, self.params["weight"], need_dx=self.needs_input_grad)
        # Weight sharing: dW and db are sums over every position of every sample.
        self.grads["weight"] = dW  # (C_out, C_in, K)
        if self.bias:
            self.grads["bias"] = db.astype(self.params["bias"].dtype, copy=False)  # (C_out,)
        return dx  # (N, C_in, L) or None
