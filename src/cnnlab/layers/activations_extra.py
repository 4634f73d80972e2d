"""More activation layers: ReLU6 and Hardswish (MobileNet), and LogSoftmax.

They follow ``cnnlab.layers.activations`` (kernels in ``cnnlab.functional.activations``, each
forward beside its derivative); they live here to keep that file short (issue 26: the
classic architectures and ONNX import need them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, is_int
from cnnlab.functional import activations as F
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Layer, TorchSpec, unsupported_torch


class ReLU6(Layer):
    """min(max(0, x), 6): the ReLU of MobileNet, capped so low-precision inference stays in range.

    The derivative is 1 for 0 < x < 6 and 0 elsewhere, also at the kinks 0 and 6 (PyTorch).

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations_extra import ReLU6
        >>> ReLU6().forward(np.array([-1.0, 3.0, 9.0]))
        array([0., 3., 6.])
    """

    # torch exports nn.ReLU6 as Clip(min=0, max=6).
    torch = TorchSpec("torch.nn.ReLU6", onnx_ops=("Clip",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return F.relu6(x)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.relu6_backward(dy, self._cached())


class Hardswish(Layer):
    """x * relu6(x + 3) / 6: MobileNetV3's piecewise version of swish, x * sigmoid(x).

    0 for x <= -3, x for x >= 3, a parabola between. The derivative is 0 for x <= -3,
    x/3 + 1/2 for -3 < x < 3 and 1 for x >= 3 (PyTorch's values at the kinks).

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations_extra import Hardswish
        >>> Hardswish().forward(np.array([-4.0, 0.0, 1.0, 4.0]))
        array([-0.        ,  0.        ,  0.66666667,  4.        ])
    """

    torch = TorchSpec("torch.nn.Hardswish", onnx_ops=("HardSwish",))

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = x
        return F.hardswish(x)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.hardswish_backward(dy, self._cached())


class LogSoftmax(Layer):
    """log(softmax(x)) along ``axis``, computed as x - logsumexp(x) (finite for logits of ±1000).

    Classifiers exported from PyTorch often end in it (with ``NLLLoss``). For training a
    cnnlab model, ``SoftmaxCrossEntropy`` on the raw logits does the same in one fused step.

    Args:
        axis: the axis of the classes; 1 for (N, K) and (N, K, ...) inputs. Negative values
            count from the end.

    Shape:
        - Input: (N, K) or any shape with ``axis``. Output: same shape; ``exp`` of it sums
          to 1 along ``axis``.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.activations_extra import LogSoftmax
        >>> LogSoftmax().forward(np.array([[1000.0, 1000.0]]))  # log(0.5) each
        array([[-0.69314718, -0.69314718]])
    """

    torch = TorchSpec("torch.nn.LogSoftmax", onnx_ops=("LogSoftmax",))

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        if not is_int(axis):
            raise arg_error("LogSoftmax", "axis", "an int", axis)
        self.axis = int(axis)

    def torch_args(self) -> dict[str, Any]:
        return {"dim": self.axis}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.dim is None:
            raise unsupported_torch(module, "LogSoftmax needs an explicit dim")
        return {"axis": module.dim}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if not -len(input_shape) <= self.axis < len(input_shape):
            raise ShapeError(
                f"LogSoftmax: input must have an axis {self.axis} (axis={self.axis}). "
                f"Received: shape {tuple(input_shape)}"
            )
        return tuple(input_shape)

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        self.output_shape(x.shape)
        y = F.log_softmax(x, axis=self.axis)
        self._cache = y
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        return F.log_softmax_backward(dy, self._cached(), axis=self.axis)
