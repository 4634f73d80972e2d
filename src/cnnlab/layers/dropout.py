"""Dropout (Srivastava et al., 2014), in the "inverted" form PyTorch uses."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import check_real
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.base import Layer, TorchSpec


class Dropout(Layer):
    """Zero each input element with probability ``p`` while training.

    Inverted dropout: the kept elements are scaled by 1 / (1 - p) during training, so the
    expected output equals the input and evaluation is the identity (no rescaling at test
    time). The masks come from ``rng`` only, so the same seed gives the same masks.

    Args:
        p: probability of dropping an element, 0 <= p < 1.
        rng: seed or ``numpy.random.Generator`` for the masks.

    Shape:
        - Input: any shape. Output: same shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.dropout import Dropout
        >>> drop = Dropout(0.5, rng=0)
        >>> y = drop.forward(np.ones((2, 4)))
        >>> sorted(set(y.ravel().tolist())) # kept units are scaled by 1 / (1 - 0.5)
        [0.0, 2.0]
        >>> drop.eval().forward(np.ones((1, 3)))
        array([[1., 1., 1.]])
    """

    torch = TorchSpec("torch.nn.Dropout", onnx_ops=("Dropout",))

    def __init__(self, p: float = 0.5, rng: RngLike = None) -> None:
        super().__init__()
        check_real("Dropout", "p", p, "a number with 0 <= p < 1", lambda v: 0 <= v < 1)
        self.p: float = p
        self._rng: np.random.Generator = make_rng(rng)

    def torch_args(self) -> dict[str, Any]:
        return {"p": self.p}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"p": module.p}

    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0:
            self._cache = (None,)  # identity: backward passes dy through
            return x
        keep = self._rng.random(x.shape) >= self.p  # each kept with probability 1 - p
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        mask = keep.astype(dtype) / dtype.type(1 - self.p)  # 0 or 1 / (1 - p)
        self._cache = (mask,)
        return x * mask

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> np.ndarray:
        (mask,) = self._cached()
        return dy if mask is None else dy * mask

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Free: counted in its eval form, the identity."""
        return 0
