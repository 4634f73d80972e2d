"""Activation functions as stateless kernels, each forward beside its derivative.

Every ``<name>(x)`` has a ``<name>_backward(dy, ...)`` right below it that applies the chain
rule dL/dx = dL/dy * dy/dx, taking whatever the forward pass had (``x`` or ``y``).
Results keep the input's dtype. The rules match PyTorch's, including the value chosen
for the derivative at kinks (ReLU: 0 at x = 0; LeakyReLU: ``negative_slope``; ELU: ``alpha``).

Example:
    >>> import numpy as np
    >>> from cnnlab.functional.activations import leaky_relu, softmax
    >>> leaky_relu(np.array([-10.0, 5.0]))
    array([-1.,  5.])
    >>> softmax(np.array([[0.0, 0.0]]))
    array([[0.5, 0.5]])
"""

from __future__ import annotations

import numpy as np


# ---- sigmoid: 1 / (1 + e^-x) ------------------------------------------------------------
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, stable for any |x| (no overflow warning).

    With z = e^-|x| (always in (0, 1]): sigmoid(x) = 1 / (1 + z) for x >= 0 and
    z / (1 + z) for x < 0, so ``exp`` never sees a large positive argument.
    """
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d sigmoid/dx = y (1 - y), from the forward output ``y``."""
    return dy * y * (1 - y)


# ---- tanh -----------------------------------------------------------------------------------
def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d tanh/dx = 1 - y², from the forward output ``y``."""
    return dy * (1 - y * y)


# ---- ReLU: max(0, x) --------------------------------------------------------------------------
def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x)."""
    return np.maximum(x, 0)


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """1 where x > 0, else 0 (0 at x = 0, as in PyTorch)."""
    return dy * (x > 0)


# ---- Leaky ReLU: max(slope * x, x) ---------------------------------------------------------------
def leaky_relu(x: np.ndarray, negative_slope: float = 0.1) -> np.ndarray:
    """x for x > 0, ``negative_slope * x`` otherwise (the lecture's max(0.1x, x) for slope 0.1)."""
    return np.where(x > 0, x, negative_slope * x)


def leaky_relu_backward(dy: np.ndarray, x: np.ndarray, negative_slope: float = 0.1) -> np.ndarray:
    """1 where x > 0, else ``negative_slope`` (also at x = 0, as in PyTorch)."""
    return np.where(x > 0, dy, negative_slope * dy)


# ---- ELU: x (x > 0), alpha (e^x - 1) (x <= 0) -------------------------------------------------------
def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """x for x > 0, ``alpha * (e^x - 1)`` otherwise (both are 0 at x = 0)."""
    # expm1 of min(x, 0): accurate near 0 and never overflows for the unused positive branch.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_backward(dy: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """1 where x > 0, else ``alpha * e^x`` (``alpha`` at x = 0, as in PyTorch)."""
    return np.where(x > 0, dy, dy * (alpha * np.exp(np.minimum(x, 0))))


# ---- Maxout: max over groups of `pieces` consecutive channels ------------------------------------
def maxout(x: np.ndarray, pieces: int) -> tuple[np.ndarray, np.ndarray]:
    """Max over groups of ``pieces`` consecutive channels (axis 1).

    Output channel c is the max of input channels c*pieces ... c*pieces + pieces - 1.
    Returns ``(y, index)``: ``index`` (the winning piece, first one on ties) is what
    ``maxout_backward`` needs. The caller checks that axis 1 divides by ``pieces``.
    """
    N, CK, *rest = x.shape
    grouped = x.reshape(N, CK // pieces, pieces, *rest)  # (N, C, pieces, ...)
    index = grouped.argmax(axis=2)[:, :, None]  # (N, C, 1, ...), first max on ties
    y = np.take_along_axis(grouped, index, axis=2)[:, :, 0]  # (N, C, ...)
    return y, index


def maxout_backward(dy: np.ndarray, index: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Route each dy to the winning input channel of its group; the others get 0."""
    N, C, *rest = dy.shape
    pieces = x_shape[1] // C
    dgrouped = np.zeros((N, C, pieces, *rest), dtype=dy.dtype)  # (N, C, pieces, ...)
    np.put_along_axis(dgrouped, index, dy[:, :, None], axis=2)
    return dgrouped.reshape(x_shape)  # (N, C*pieces, ...)


# ---- softmax and log-softmax -------------------------------------------------------------------------
def softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """e^x / sum(e^x) along ``axis``, stable: the max is subtracted first (no overflow)."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = 1) -> np.ndarray:
    """Jacobian-vector product of softmax: dx = y * (dy - sum(dy * y)), from the output ``y``."""
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """log(softmax(x)) computed as x - logsumexp(x), finite even for logits of ±1000.

    log(sum(e^x)) = m + log(sum(e^(x - m))) with m = max(x): every exponent is <= 0,
    so nothing overflows, and the largest term is e^0 = 1, so the log never sees 0.
    """
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def log_softmax_backward(dy: np.ndarray, y: np.ndarray, axis: int = 1) -> np.ndarray:
    """Jacobian-vector product of log-softmax: dx = dy - softmax(x) * sum(dy), from the output ``y``.

    d log(softmax_i)/dx_j = [i == j] - softmax_j, and softmax = e^y, so the sum over i of
    dy_i times that row is dy_j - e^(y_j) * sum_i(dy_i).
    """
    return dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


# ---- ReLU6 and hard swish (MobileNet) ----------------------------------------------------------
def relu6(x: np.ndarray) -> np.ndarray:
    """min(max(0, x), 6): ReLU capped at 6 (MobileNet, Howard et al., 2017, arXiv:1704.04861)."""
    return np.minimum(np.maximum(x, 0), 6)


def relu6_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """1 where 0 < x < 6, else 0 (0 at both kinks, as PyTorch's Hardtanh)."""
    return dy * ((x > 0) & (x < 6))


def hardswish(x: np.ndarray) -> np.ndarray:
    """x * relu6(x + 3) / 6: a cheap swish (MobileNetV3, Howard et al., 2019, arXiv:1905.02244)."""
    return x * np.minimum(np.maximum(x + 3, 0), 6) / 6


def hardswish_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """0 for x <= -3, x/3 + 1/2 for -3 < x < 3, 1 for x >= 3 (PyTorch's values at the kinks)."""
    slope = np.where(x <= -3, 0.0, np.where(x < 3, x / 3 + 0.5, 1.0)).astype(dy.dtype, copy=False)
    return dy * slope
