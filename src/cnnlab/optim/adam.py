"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), PyTorch's update rules."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from cnnlab.errors import arg_error
from cnnlab.layers.base import Param
from cnnlab.optim.base import SMALLEST, Optimizer, check_real


class Adam(Optimizer):
    """Adam: steps scaled by running averages of the gradient and its square.

    The update of ``torch.optim.Adam`` (``amsgrad=False``) at step ``t`` for a parameter
    ``w`` with gradient ``g``::

        g = g + weight_decay * w                  # L2 penalty in the gradient (Adam only)
        m = m + (1 - beta1) * (g - m)             # = beta1*m + (1-beta1)*g, as torch's lerp
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args:
        params: ``model.parameters()``.
        lr: learning rate (> 0).
        betas: decay rates ``(beta1, beta2)`` of the two averages, each in [0, 1).
        eps: added to the denominator for stability (> 0).
        weight_decay: L2 penalty added to the gradient (>= 0). With Adam the penalty is
            scaled by the adaptive denominator; AdamW decouples it.

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.base import Layer
        >>> class _W(Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.params["weight"] = np.array([1.0, 2.0])
        >>> layer = _W()
        >>> opt = Adam(layer.parameters(), lr=0.1)
        >>> layer.grads["weight"] = np.array([3.0, -0.5])
        >>> opt.step()  # the first Adam step moves each weight by about lr * sign(g)
        >>> layer.params["weight"]
        array([0.9, 2.1])
    """

    elementwise = True  # step() may run _update on blocks of a parameter

    def __init__(
        self,
        params: Iterable[Param],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        pair = "a pair (beta1, beta2) with each in [0, 1)"
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise arg_error(self.name, "betas", pair, betas)
        for b in betas:  # beta = 1 would never update the average; it stays at its zero start
            if isinstance(b, bool) or not isinstance(b, (int, float, np.floating)) or not 0 <= b < 1:
                raise arg_error(self.name, "betas", pair, betas)
        # eps = 0 divides by zero wherever a gradient has always been 0
        eps = check_real(self.name, "eps", eps, SMALLEST, math.inf, "a positive finite float")
        weight_decay = check_real(
            self.name, "weight_decay", weight_decay, 0.0, math.inf, "a non-negative float"
        )
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay

    def buffer_names(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def hparams(self) -> dict[str, object]:
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _decay(self, value: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Adam's L2 penalty: return ``g + weight_decay * w`` (``grad`` itself when 0)."""
        if not self.weight_decay:
            return grad
        decayed = np.multiply(value, self.weight_decay)  # the one array we cannot avoid
        return np.add(grad, decayed, out=decayed)

    def _update(
        self, value: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], work: np.ndarray
    ) -> None:
        beta1, beta2 = self.betas
        g = self._decay(value, grad)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # m <- m + (1 - beta1) (g - m)
        np.subtract(g, m, out=work)
        work *= 1.0 - beta1
        m += work
        # v <- beta2 v + (1 - beta2) g^2
        np.multiply(g, g, out=work)
        work *= 1.0 - beta2
        v *= beta2
        v += work
        # Bias corrections undo the zero start of m and v (Kingma & Ba, section 3).
        step_size = self.lr / (1.0 - beta1**self.t)
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**self.t)
        np.sqrt(v, out=work)
        work /= bias_correction2_sqrt
        work += self.eps  # denominator
        np.divide(m, work, out=work)
        work *= step_size
        np.subtract(value, work, out=value)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay ``w <- w * (1 - lr * weight_decay)``.

    The decay shrinks the weights directly before the Adam step instead of entering the
    gradient, so it is not rescaled by the adaptive denominator (Loshchilov & Hutter,
    "Decoupled Weight Decay Regularization", 2019); ``torch.optim.AdamW``'s rule.

    Args:
        params: ``model.parameters()``.
        lr: learning rate (> 0).
        betas: decay rates ``(beta1, beta2)``, each in [0, 1).
        eps: added to the denominator (> 0).
        weight_decay: decoupled decay coefficient (>= 0; default 0.01 as in PyTorch).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.base import Layer
        >>> class _W(Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.params["weight"] = np.array([1.0])
        >>> layer = _W()
        >>> opt = AdamW(layer.parameters(), lr=0.1, weight_decay=0.5)
        >>> layer.grads["weight"] = np.array([2.0])
        >>> opt.step()  # 1 * (1 - 0.1 * 0.5) - 0.1
        >>> layer.params["weight"]
        array([0.85])
    """

    def __init__(
        self,
        params: Iterable[Param],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, value: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.weight_decay:
            value *= 1.0 - self.lr * self.weight_decay  # decoupled: shrink w, leave g alone
        return grad
