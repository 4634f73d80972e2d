"""Float64 central-difference gradient checks of any layer or loss.

For a layer, the checked objective is L(x, θ) = sum(layer.forward(x) * dy) with a fixed
random ``dy``, so dL/dx = layer.backward(dy) and dL/dθ = layer.grads[θ]. Every element of
the input and of every parameter is nudged by ±eps and compared:

    numeric = (L(v + eps) - L(v - eps)) / (2 * eps)

For a loss (an object whose ``forward(logits, targets)`` returns a float), pass
``targets``; the objective is the loss itself and ``backward()`` takes no argument.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.init import RngLike, make_rng


@dataclass
class GradcheckResult:
    """Max relative error per checked tensor ("input", "weight", "0.bias", ...).

    The error of a tensor is max|analytic - numeric| / max(max|analytic|, max|numeric|, 1):
    relative for gradients larger than 1, absolute below (an exactly-zero gradient, such
    as a bias before BatchNorm, gives ~1e-10 noise, not a failure).
    """

    errors: dict[str, float] = field(default_factory=dict)
    max_abs: dict[str, float] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def ok(self, tol: float = 1e-6) -> bool:
        return self.max_error <= tol

    def __str__(self) -> str:
        lines = [f"{'tensor':<24} {'max rel err':>12} {'max abs err':>12}"]
        lines += [f"{k:<24} {v:>12.3e} {self.max_abs[k]:>12.3e}" for k, v in self.errors.items()]
        return "\n".join(lines)


def _compare(analytic: np.ndarray, numeric: np.ndarray) -> tuple[float, float]:
    diff = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)))
    return diff / max(scale, 1.0), diff


def gradcheck(
    layer: Any,
    x: np.ndarray,
    targets: np.ndarray | None = None,
    eps: float = 1e-6,
    params: bool = True,
    rng: RngLike = 0,
) -> GradcheckResult:
    """Check a layer's (or a loss's) backward against float64 central differences.

    The layer is deep-copied and converted to float64, so the caller's layer is untouched.
    Layers with randomness in training mode (Dropout) must be checked in eval mode or with
    a fixed mask.

    Args:
        layer: a cnnlab layer (``forward(x)``, ``backward(dy)``) or a loss
            (``forward(logits, targets)`` -> float, ``backward()``) when ``targets`` is given.
        x: input; converted to float64.
        targets: labels/targets for a loss; None for a layer.
        eps: the finite-difference step.
        params: also check every ``params[name]`` gradient.
        rng: seed or Generator for the random upstream gradient ``dy``.

    Returns:
        GradcheckResult with the max relative error for "input" and each parameter.

    Example:
        >>> import numpy as np
        >>> from cnnlab.gradcheck import gradcheck
        >>> class Square:  # y = x**2, a minimal layer
        ...     params, grads = {}, {}
        ...     def forward(self, x):
        ...         self.x = x
        ...         return x**2
        ...     def backward(self, dy):
        ...         return 2 * self.x * dy
        >>> gradcheck(Square(), np.array([[1.0, -2.0]])).ok(1e-8)
        True
    """
    layer = copy.deepcopy(layer)
    if hasattr(layer, "astype"):
        layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    is_loss = targets is not None
    dy: np.ndarray | None = None

    def objective() -> float:
        if is_loss:
            return float(layer.forward(x, targets))
        out = layer.forward(x)
        return float(np.sum(out * dy))

    if not is_loss:
        dy = make_rng(rng).standard_normal(layer.forward(x).shape)
        layer.forward(x)
        dx = layer.backward(dy)
    else:
        layer.forward(x, targets)
        dx = layer.backward()
    analytic = {"input": np.array(dx, dtype=np.float64)}
    tensors = {"input": x}
    if params:
        for name, value in _named_params(layer):
            tensors[name] = value
            analytic[name] = np.array(_named_grads(layer)[name], dtype=np.float64)

    result = GradcheckResult()
    for name, tensor in tensors.items():
        numeric = np.zeros_like(tensor)
        flat, num_flat = tensor.reshape(-1), numeric.reshape(-1)
        assert np.shares_memory(flat, tensor), "gradcheck needs contiguous tensors"
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = objective()
            flat[i] = old - eps
            minus = objective()
            flat[i] = old
            num_flat[i] = (plus - minus) / (2 * eps)
        result.errors[name], result.max_abs[name] = _compare(analytic[name], numeric)
    return result


def _named_params(layer: Any) -> list[tuple[str, np.ndarray]]:
    if hasattr(layer, "named_layers"):
        return [(p + k, v) for p, sub in layer.named_layers() for k, v in sub.params.items()]
    return list(getattr(layer, "params", {}).items())


def _named_grads(layer: Any) -> dict[str, np.ndarray]:
    if hasattr(layer, "named_layers"):
        return {p + k: v for p, sub in layer.named_layers() for k, v in sub.grads.items()}
    return dict(getattr(layer, "grads", {}))
