"""Dense (fully connected) layer: y = x Wᵀ + b, in PyTorch's layout."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.init import RngLike, make_rng, torch_default_uniform
from cnnlab.layers.base import Layer, TorchSpec, config_int


class Dense(Layer):
    """Fully connected layer: every output is a weighted sum of every input plus a bias.

    ``weight`` has PyTorch's ``nn.Linear`` layout (out_features, in_features) and, like
    PyTorch, weight and bias start from U(-1/sqrt(in_features), 1/sqrt(in_features)).

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        bias: whether to add a learned bias.
        rng: seed or ``numpy.random.Generator`` for the initial weights.

    Shape:
        - Input: (N, in_features). Flatten (N, C, H, W) maps first (``Flatten()``).
        - Output: (N, out_features).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.dense import Dense
        >>> dense = Dense(3136, 128, rng=0)
        >>> dense
        Dense(3136, 128)
        >>> dense.params["weight"].shape, dense.params["bias"].shape
        ((128, 3136), (128,))
        >>> dense.forward(np.zeros((2, 3136), dtype=np.float32)).shape
        (2, 128)
    """

    torch = TorchSpec("torch.nn.Linear", onnx_ops=("Gemm", "MatMul"))

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng: RngLike = None) -> None:
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            check_int("Dense", arg, value)
        if not isinstance(bias, (bool, np.bool_)):
            raise arg_error("Dense", "bias", "True or False", bias)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.bias = bool(bias)
        gen = make_rng(rng)
        self.params["weight"] = torch_default_uniform(
            (self.out_features, self.in_features), self.in_features, gen
        )
        if self.bias:
            self.params["bias"] = torch_default_uniform((self.out_features,), self.in_features, gen)

    def torch_args(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {
            "in_features": module.in_features,
            "out_features": module.out_features,
            "bias": module.bias is not None,
        }

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) == 2 and shape[1] == self.in_features:
            return
        message = (
            f"Dense: input must have shape (N, in_features) = (N, {self.in_features}). "
            f"Received: shape {tuple(shape)}"
        )
        if len(shape) > 2:
            sizes = "*".join(map(str, shape[1:]))
            message += (
                f". Add Flatten() before Dense to turn {tuple(shape)} into (N, {sizes}) = "
                f"(N, {int(np.prod(shape[1:]))})"
            )
        raise ShapeError(message)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Dense: input must be a numpy.ndarray. Received: {type(x).__name__}")
        self._check_shape(x.shape)
        self._cache = x
        y = x @ self.params["weight"].T  # (N, out_features)
        if self.bias:
            y += self.params["bias"]  # in place: y is a fresh array
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        x = self._cached()
        W = self.params["weight"]
        self.grads["weight"] = (dy.T @ x).astype(W.dtype, copy=False)  # (out, in): dL/dW = dyᵀ x
        if self.bias:
            self.grads["bias"] = dy.sum(axis=0).astype(W.dtype, copy=False)  # (out,)
        return dy @ W  # (N, in_features): dL/dx = dy W

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._check_shape(tuple(input_shape))
        return (input_shape[0], self.out_features)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """2 * in * out (multiply-adds), plus one add per output for the bias."""
        self._check_shape(tuple(input_shape))
        return 2 * self.in_features * self.out_features + (self.out_features if self.bias else 0)

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """out * in weights, plus out biases."""
        out_features = config_int(args.get("out_features"))
        count = out_features * config_int(args.get("in_features"))
        return count + (0 if args.get("bias", True) is False else out_features)
