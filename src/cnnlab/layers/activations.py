"""The lecture's activation layers: Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Maxout, and Softmax.

Each layer caches what its derivative needs and calls the kernels in
``cnnlab.functional.activations``, where every forward sits beside its backward.
All but Maxout keep the input's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, check_int, check_real
from cnnlab.functional import activations as F
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec, unsupported_torch


class Sigmoid(Layer):
    """σ(x) = 1 / (1 + e^-x), computed without overflow for large |x|.

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import Sigmoid
        >>> Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """

    torch = TorchSpec("torch.nn.Sigmoid", onnx_ops=("Sigmoid",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        y = F.sigmoid(x)
        self._cache = y
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.sigmoid_backward(dy, self._cached())


class Tanh(Layer):
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x).

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import Tanh
        >>> Tanh().forward(np.array([0.0, 1000.0]))
        array([0., 1.])
    """

    torch = TorchSpec("torch.nn.Tanh", onnx_ops=("Tanh",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        y = F.tanh(x)
        self._cache = y
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.tanh_backward(dy, self._cached())


class ReLU(Layer):
    """max(0, x). The derivative at 0 is taken as 0, as in PyTorch.

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import ReLU
        >>> ReLU().forward(np.array([-2.0, 0.0, 3.0]))
        array([0., 0., 3.])
    """

    torch = TorchSpec("torch.nn.ReLU", onnx_ops=("Relu",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return F.relu(x)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.relu_backward(dy, self._cached())


class LeakyReLU(Layer):
    """The lecture's max(0.1x, x): x for x > 0, ``negative_slope * x`` otherwise.

    The default slope 0.1 is the lecture's; PyTorch's ``nn.LeakyReLU`` defaults to 0.01
    (pass ``negative_slope=0.01`` to match it). The derivative at 0 is ``negative_slope``,
    as in PyTorch.

    Args:
        negative_slope: the slope for x <= 0.

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import LeakyReLU
        >>> LeakyReLU().forward(np.array([-10.0, 5.0]))
        array([-1.,  5.])
    """

    torch = TorchSpec("torch.nn.LeakyReLU", onnx_ops=("LeakyRelu",))

    def __init__(self, negative_slope: float = 0.1) -> None:
        super().__init__()
        check_real("LeakyReLU", "negative_slope", negative_slope)
        self.negative_slope: float = negative_slope

    def torch_args(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"negative_slope": module.negative_slope}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return F.leaky_relu(x, self.negative_slope)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.leaky_relu_backward(dy, self._cached(), self.negative_slope)


class ELU(Layer):
    """Exponential linear unit: x for x > 0, ``alpha * (e^x - 1)`` otherwise.

    Matches PyTorch exactly, including the derivative at 0, which is ``alpha``.

    Args:
        alpha: the value ELU approaches for x -> -inf is ``-alpha``.

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import ELU
        >>> ELU().forward(np.array([-1.0, 2.0]))  # e^-1 - 1 = -0.632...
        array([-0.63212056,  2.        ])
    """

    torch = TorchSpec("torch.nn.ELU", onnx_ops=("Elu",))

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        check_real("ELU", "alpha", alpha)
        self.alpha: float = alpha

    def torch_args(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"alpha": module.alpha}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return F.elu(x, self.alpha)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.elu_backward(dy, self._cached(), self.alpha)


class Maxout(Layer):
    """Max over groups of ``pieces`` consecutive channels (Goodfellow et al., 2013).

    Output channel c is the max of input channels c*pieces ... c*pieces + pieces - 1.
    On ties the gradient goes to the first of the tied channels.
    ``Dense(in, out * k)`` followed by ``Maxout(k)`` is the lecture's
    max(w1ᵀx + b1, w2ᵀx + b2) (for k = 2): rows 2c and 2c + 1 of the dense weight are
    w1 and w2 of output unit c.

    Args:
        pieces: the number k of linear pieces each output takes the max over (>= 1).

    Shape:
        - Input: (N, C * pieces) or (N, C * pieces, H, W) (any trailing axes).
        - Output: (N, C) or (N, C, H, W), with C = input channels / pieces.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.dense import Dense
        >>> from cnnlab.layers.activations import Maxout
        >>> dense, maxout = Dense(3, 2 * 2, rng=0), Maxout(2)  # 2 outputs, 2 pieces each
        >>> x = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
        >>> y = maxout.forward(dense.forward(x))
        >>> y.shape
        (1, 2)
        >>> w, b = dense.params["weight"], dense.params["bias"]
        >>> w1, b1, w2, b2 = w[0], b[0], w[1], b[1]  # output unit 0
        >>> bool(np.isclose(y[0, 0], max(w1 @ x[0] + b1, w2 @ x[0] + b2)))
        True
    """

    # No ONNX operator: torch exports it as Reshape + ReduceMax.
    torch = TorchSpec("cnnlab.interop.torch_modules.Maxout")

    def __init__(self, pieces: int = 2) -> None:
        super().__init__()
        self.pieces: int = check_int("Maxout", "pieces", pieces)

    def torch_args(self) -> dict[str, Any]:
        return {"pieces": self.pieces}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"pieces": module.pieces}

    def _check_channels(self, shape: tuple[int, ...]) -> None:
        if len(shape) < 2:
            raise ShapeError(f"Maxout: input must have shape (N, C*pieces, ...). Received: shape {shape}")
        channels = shape[1]
        if channels % self.pieces != 0:
            raise ShapeError(
                f"Maxout: input channels ({channels}) must be divisible by pieces ({self.pieces}); "
                f"{channels} % {self.pieces} = {channels % self.pieces}. Received: shape {shape}"
            )

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_channels(x.shape)
        y, index = F.maxout(x, self.pieces)
        self._cache = (index, x.shape)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        index, x_shape = self._cached()
        return F.maxout_backward(dy, index, x_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        self._check_channels(shape)
        return (shape[0], shape[1] // self.pieces, *shape[2:])


class Softmax(Layer):
    """Softmax over axis 1 (classes or channels), stable for large logits.

    For training, prefer ``SoftmaxCrossEntropy`` on the raw logits: the fused loss is more
    stable and its gradient is simply (softmax - target) / N. Use this layer for inference
    (turning logits into probabilities).

    Shape:
        - Input: (N, K) or (N, K, ...). Output: same shape, summing to 1 along axis 1.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations import Softmax
        >>> Softmax().forward(np.array([[1000.0, 1000.0, -1000.0]]))
        array([[0.5, 0.5, 0. ]])
    """

    torch = TorchSpec("torch.nn.Softmax", onnx_ops=("Softmax",))

    def torch_args(self) -> dict[str, Any]:
        return {"dim": 1}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.dim != 1:
            raise unsupported_torch(module, "cnnlab's Softmax is over axis 1 (dim=1)")
        return {}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ShapeError(
                f"Softmax: input must have shape (N, K) or (N, K, ...). Received: shape {x.shape}"
            )
        y = F.softmax(x, axis=1)
        self._cache = y
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.softmax_backward(dy, self._cached(), axis=1)
