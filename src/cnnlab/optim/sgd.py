"""Stochastic gradient descent with momentum and Nesterov momentum (PyTorch's rules)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from cnnlab.errors import arg_error
from cnnlab.layers.base import Param
from cnnlab.optim.base import ONE_BELOW, Optimizer, check_real


class SGD(Optimizer):
    """SGD: ``w <- w - lr * d`` with optional L2 weight decay and (Nesterov) momentum.

    The update of ``torch.optim.SGD`` with ``dampening=0``, for each parameter ``w``
    with gradient ``g``::

        d = g + weight_decay * w              # L2 penalty folded into the gradient
        b = momentum * b + d                  # (b = d on the first step)
        d = d + momentum * b  if nesterov else  b
        w = w - lr * d

    Args:
        params: ``model.parameters()``.
        lr: learning rate (> 0).
        momentum: momentum factor in [0, 1) (0 is plain SGD).
        nesterov: use Nesterov momentum (needs ``momentum > 0``).
        weight_decay: L2 penalty coefficient (>= 0).

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.base import Layer
        >>> class _W(Layer):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.params["weight"] = np.array([1.0, 2.0])
        >>> layer = _W()
        >>> opt = SGD(layer.parameters(), lr=0.1, momentum=0.9)
        >>> layer.grads["weight"] = np.array([1.0, -1.0])
        >>> opt.step(); opt.step()
        >>> layer.params["weight"]  # 1 - 0.1*1 - 0.1*1.9, 2 + 0.1 + 0.19
        array([0.71, 2.29])
    """

    elementwise = True  # step() may run _update on blocks of a parameter

    def __init__(
        self,
        params: Iterable[Param],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        # momentum >= 1 makes the buffer a sum that never forgets: it grows without bound.
        momentum = check_real("SGD", "momentum", momentum, 0.0, ONE_BELOW, "a float in [0, 1)")
        if nesterov and momentum == 0:
            raise arg_error(
                "SGD", "nesterov", "False when momentum=0 (Nesterov needs momentum > 0)", nesterov
            )
        weight_decay = check_real("SGD", "weight_decay", weight_decay, 0.0, math.inf, "a non-negative float")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def buffer_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum else ()

    def hparams(self) -> dict[str, object]:
        return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _update(
        self, value: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], work: np.ndarray
    ) -> None:
        d = grad  # read-only: the layer owns its grads
        if self.weight_decay:
            np.multiply(value, self.weight_decay, out=work)
            d = np.add(grad, work, out=work)  # g + wd * w
        if self.momentum:
            # A zero buffer makes the first step b = d, exactly as PyTorch's clone(d).
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += d
            if self.nesterov and d is grad:
                np.multiply(buf, self.momentum, out=work)
                d = np.add(grad, work, out=work)  # d + momentum * b
            elif self.nesterov:
                d = np.add(d, self.momentum * buf, out=work)  # d + momentum * b (one temporary)
            else:
                d = buf
        np.multiply(d, self.lr, out=work)
        np.subtract(value, work, out=value)  # in place: references to w stay valid
