"""Loss functions: the quantitative measure of how far predictions are from targets.

The loss contract: ``loss.forward(pred, target)`` returns the mean loss over the batch as a
Python float and caches what the gradient needs; ``loss.backward()`` returns dL/dpred,
the gradient that starts the network's backward phase. Like layers, a backward without a
forward raises a clear error.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, ShapeError, arg_error
from cnnlab.functional.activations import log_softmax
from cnnlab.functional.fpstate import quiet_fp_method


class Loss:
    """Base class: the cache, the lone-backward error, ``name``, ``get_config`` and ``repr``."""

    def __init__(self) -> None:
        self._cache: Any = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> float:
        return self.forward(pred, target)

    def _cached(self) -> Any:
        if self._cache is None:
            raise CnnlabError(
                f"{self.name}: backward() called before forward(); run forward(pred, target) first"
            )
        return self._cache

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this loss: ``type(loss)(**loss.get_config())``."""
        return {
            arg: getattr(self, arg) for arg in list(inspect.signature(type(self).__init__).parameters)[1:]
        }

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = [f"{k}={v!r}" for k, v in self.get_config().items() if v != sig.parameters[k].default]
        return f"{self.name}({', '.join(parts)})"


def _as_float_array(where: str, what: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{where}: {what} must be a numeric array. Received: dtype {array.dtype}")
    return array if array.dtype.kind == "f" else array.astype(np.float64)


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, fused: the lecture's L = 1/n Σ_i L_i with
    L_i = -Σ_k y_ik log S(f(x_i))_k, y_i the one-hot label and S the softmax.

    Takes raw logits (no Softmax layer before it), like ``torch.nn.CrossEntropyLoss``.
    Fusing the two lets the loss use log-softmax = logits - logsumexp(logits), which stays
    finite for any logits (a separate softmax underflows to 0 for a logit far below the
    others, and log(0) = -inf), and makes the gradient simply (softmax - y) / N.

    Args:
        label_smoothing: ε in [0, 1); the target becomes (1 - ε) y + ε / K, as in PyTorch.

    Shape:
        - logits: (N, K).
        - targets: integer class labels (N,) with values in [0, K), or one-hot /
          probability targets (N, K).
        - forward returns a float (the mean over the N examples); backward returns (N, K).

    Example:
        >>> import numpy as np
        >>> from cnnlab.losses import SoftmaxCrossEntropy
        >>> loss = SoftmaxCrossEntropy()
        >>> round(loss.forward(np.array([[0.0, 0.0], [1000.0, -1000.0]]), np.array([1, 0])), 6)
        0.346574
        >>> loss.backward()  # (softmax - one_hot) / N
        array([[ 0.25, -0.25],
               [ 0.  ,  0.  ]])
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if (
            isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, numbers.Real)
            or not 0 <= label_smoothing < 1
        ):
            # 1 would make every target uniform: there would be nothing left to learn
            raise arg_error("SoftmaxCrossEntropy", "label_smoothing", "a number in [0, 1)", label_smoothing)
        self.label_smoothing: float = label_smoothing

    def _target_distribution(self, targets: Any, N: int, K: int, dtype: np.dtype) -> np.ndarray:
        """The (N, K) target rows y (one-hot or given), smoothed as in PyTorch."""
        targets = np.asarray(targets)
        if targets.ndim == 1:
            if targets.shape[0] != N:
                raise ShapeError(
                    f"{self.name}: labels must have shape (N,) = ({N},), one per row of logits. "
                    f"Received: shape {targets.shape}"
                )
            if targets.dtype.kind not in "iu":
                raise TypeError(
                    f"{self.name}: labels (N,) must be integers (class indices); pass probabilities "
                    f"as an (N, K) array. Received: dtype {targets.dtype}"
                )
            bad = np.flatnonzero((targets < 0) | (targets >= K))
            if bad.size:
                raise ValueError(
                    f"{self.name}: labels must be in [0, K) = [0, {K}) for logits with K={K} classes. "
                    f"Received: label {targets[bad[0]]} at index {bad[0]}"
                )
            y = np.zeros((N, K), dtype=dtype)
            y[np.arange(N), targets] = 1  # one-hot
        elif targets.ndim == 2:
            if targets.shape != (N, K):
                raise ShapeError(
                    f"{self.name}: one-hot/probability targets must have the logits' shape "
                    f"(N, K) = ({N}, {K}). Received: shape {targets.shape}"
                )
            y = _as_float_array(self.name, "targets", targets).astype(dtype, copy=False)
        else:
            raise ShapeError(
                f"{self.name}: targets must be labels (N,) = ({N},) or probabilities (N, K) = ({N}, {K}). "
                f"Received: shape {targets.shape}"
            )
        eps = self.label_smoothing
        return y if eps == 0 else (1 - eps) * y + eps / K

    @quiet_fp_method
    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        logits = _as_float_array(self.name, "logits", logits)
        if logits.ndim != 2 or logits.shape[0] == 0:
            raise ShapeError(
                f"{self.name}: logits must have shape (N, K) with N >= 1 (Flatten/Dense first). "
                f"Received: shape {logits.shape}"
            )
        N, K = logits.shape
        y = self._target_distribution(targets, N, K, logits.dtype)  # (N, K)
        logp = log_softmax(logits, axis=1)  # (N, K), stable via log-sum-exp
        self._cache = (logp, y)
        return float(-np.sum(y * logp) / N)

    @quiet_fp_method
    def backward(self) -> np.ndarray:
        logp, y = self._cached()
        N = logp.shape[0]
        # dL_i/dlogits = softmax * Σ_k y_k - y, which is softmax - y for rows summing to 1.
        return (np.exp(logp) * y.sum(axis=1, keepdims=True) - y) / N  # (N, K)


class MSELoss(Loss):
    """Mean squared error over all elements, like ``torch.nn.MSELoss()``: mean((pred - target)²).

    Shape:
        - pred and target: the same shape (any). forward returns a float; backward returns
          dL/dpred = 2 (pred - target) / pred.size, of pred's shape.

    Example:
        >>> import numpy as np
        >>> from cnnlab.losses import MSELoss
        >>> loss = MSELoss()
        >>> loss.forward(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
        2.5
        >>> loss.backward()
        array([[1., 2.]])
    """

    @quiet_fp_method
    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        pred = _as_float_array(self.name, "pred", pred)
        target = _as_float_array(self.name, "target", target)
        if pred.shape != target.shape:
            raise ShapeError(
                f"{self.name}: target must have the shape of pred {pred.shape}. "
                f"Received: shape {target.shape}"
            )
        if pred.size == 0:
            raise ShapeError(f"{self.name}: pred must not be empty. Received: shape {pred.shape}")
        diff = pred - target.astype(pred.dtype, copy=False)
        self._cache = diff
        return float(np.mean(diff * diff))

    @quiet_fp_method
    def backward(self) -> np.ndarray:
        diff = self._cached()
        return 2 * diff / diff.size
