"""The one PyTorch comparison the layer tests share: same input, same dy, same numbers.

``compare_with_torch(torch, layer, fn, x, dy)`` runs one forward and backward of a cnnlab
layer and of PyTorch's ``fn`` on float64 copies of the same ``x`` and ``dy`` and asserts
that the outputs, the input gradients and the parameter gradients agree (tinygrad's
habit: a test is one call of a helper that runs both frameworks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def torch_run(
    torch: Any, fn: Callable[..., Any], x: np.ndarray, dy: np.ndarray, params: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``fn(x, *params)`` forward and backward with ``dy`` in PyTorch: ``(y, dx, param grads)``."""
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in params]
    yt = fn(xt, *pt)
    yt.backward(torch.tensor(dy))
    return yt.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in pt]


def compare_with_torch(
    torch: Any,
    layer: Any,
    fn: Callable[..., Any],
    x: np.ndarray,
    dy: np.ndarray,
    params: Sequence[str] = (),
    rtol: float = 0.0,
    atol: float = 1e-10,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Assert that ``layer`` computes what ``fn`` computes in PyTorch, forward and backward.

    Args:
        layer: a cnnlab layer (its params in the dtype of ``x``, usually float64).
        fn: a torch function of ``(x, *params)``, or a ``torch.nn.Module`` holding the same
            weights (then every ``named_parameters`` gradient is compared with the layer's
            ``parameters()`` of the same path, and its state_dict with the layer's).
        params: names in ``layer.params`` passed to ``fn`` after ``x`` (function case).
        rtol, atol: tolerances of every comparison.
        where: a note for failure messages (e.g. the case's arguments).

    Returns:
        cnnlab's ``(y, dx)`` for further checks (``dx`` may be None: a first Conv2D).
    """
    y = np.array(layer.forward(x), copy=True)
    dx = layer.backward(dy)
    module = isinstance(fn, torch.nn.Module)
    y_t, dx_t, grads_t = torch_run(torch, fn, x, dy, [] if module else [layer.params[p] for p in params])
    assert y.shape == y_t.shape, f"output shape {y.shape} != torch's {y_t.shape} {where}"
    np.testing.assert_allclose(y, y_t, rtol=rtol, atol=atol, err_msg=f"forward {where}")
    if dx is not None:
        np.testing.assert_allclose(dx, dx_t, rtol=rtol, atol=atol, err_msg=f"dL/dx {where}")
    if not module:
        for name, grad_t in zip(params, grads_t, strict=True):
            np.testing.assert_allclose(
                layer.grads[name], grad_t, rtol=rtol, atol=atol, err_msg=f"{name} {where}"
            )
        return y, dx
    grads = {p.path: p.grad for p in layer.parameters()}
    named = dict(fn.named_parameters())
    assert list(grads) == list(named)  # same parameters, same order
    for key, param in named.items():
        np.testing.assert_allclose(
            grads[key], param.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"{key} {where}"
        )
    state = layer.state_dict()
    for key, value in fn.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_allclose(
                state[key], value.numpy(), rtol=rtol, atol=atol, err_msg=f"{key} {where}"
            )
    fn.zero_grad()
    return y, dx
