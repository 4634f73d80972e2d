"""`cnnlab explain activation NAME` and `cnnlab explain loss`: tables of real numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.explain.format import grid
from cnnlab.functional.activations import softmax
from cnnlab.layers import activations as act
from cnnlab.layers.activations import Maxout
from cnnlab.losses import SoftmaxCrossEntropy

FORMULAS = {
    "sigmoid": "sigma(x) = 1 / (1 + e^-x); derivative sigma(x) * (1 - sigma(x))",
    "tanh": "tanh(x); derivative 1 - tanh(x)^2",
    "relu": "max(0, x); derivative 1 for x > 0, else 0",
    "leaky_relu": "max(0.1x, x) (the lecture's slope 0.1; PyTorch's default is 0.01); derivative 1 or 0.1",
    "elu": "x for x >= 0, alpha * (e^x - 1) for x < 0 (alpha = 1); derivative 1 or alpha * e^x",
    "maxout": "max(w1 x + b1, w2 x + b2); derivative: w of the winning piece",
}


def _layer(name: str) -> Any:
    return {
        "sigmoid": act.Sigmoid,
        "tanh": act.Tanh,
        "relu": act.ReLU,
        "leaky_relu": act.LeakyReLU,
        "elu": act.ELU,
    }[name]()


def explain_activation(name: str) -> str:
    """Value and derivative of one of the lecture's activations at x = -3 ... 3."""
    name = name.lower().replace("-", "_")
    if name == "leakyrelu":
        name = "leaky_relu"
    if name not in FORMULAS:
        raise ValueError(f"unknown activation {name!r}. Valid: {', '.join(FORMULAS)}")
    xs = np.linspace(-3.0, 3.0, 13)
    lines = [f"{name}: {FORMULAS[name]}", f"{'x':>6} {'value':>10} {'derivative':>11}"]
    if name == "maxout":
        w, b = np.array([1.0, -0.5]), np.array([0.0, 0.5])
        lines[0] += f"; here w = ({w[0]:g}, {w[1]:g}), b = ({b[0]:g}, {b[1]:g})"
        pieces = xs[:, None] * w + b  # (13, 2): w_k x + b_k
        layer = Maxout(2)
        y = layer.forward(pieces)[:, 0]
        dpieces = layer.backward(np.ones((len(xs), 1)))
        dy = dpieces @ w  # chain rule through w_k x + b_k
    else:
        layer = _layer(name).astype(np.float64)
        y = layer.forward(xs[None, :])[0]
        dy = layer.backward(np.ones((1, len(xs))))[0]
    lines += [f"{x:>6.1f} {v:>10.4f} {d:>11.4f}" for x, v, d in zip(xs, y, dy, strict=True)]
    return "\n".join(lines)


def explain_loss(seed: int = 0) -> tuple[str, bool]:
    """Softmax and cross-entropy on a tiny batch, with the 1/n average."""
    rng = np.random.default_rng(seed)
    logits = np.round(rng.normal(0, 2, size=(3, 4)), 1)  # (n=3, K=4)
    labels = np.array([0, 2, 3])
    probs = softmax(logits)
    onehot = np.eye(4)[labels]
    per = -np.sum(onehot * np.log(probs), axis=1)
    mean = per.mean()
    fused = SoftmaxCrossEntropy().forward(logits, labels)
    ok = abs(mean - fused) < 1e-12
    lines = [
        "Cross-entropy loss for n = 3 inputs and K = 4 classes: L = 1/n * sum_i L_i,",
        "L_i = -sum_k y_ik * log(S(f(x_i))_k), y_i one-hot, S the softmax S(z)_k = e^z_k / sum_j e^z_j",
        "Logits f(x_i), one row per input:",
        grid(logits),
        "Softmax probabilities S(f(x_i)):",
        grid(probs, decimals=4),
        f"Labels: {labels.tolist()}; one-hot y_i:",
        grid(onehot),
        "Per-input loss L_i = -log(probability of the true class):",
    ]
    lines += [f"  L_{i} = -log({probs[i, labels[i]]:.4f}) = {per[i]:.4f}" for i in range(3)]
    lines += [
        f"L = (1/3) * ({' + '.join(f'{v:.4f}' for v in per)}) = {mean:.4f}",
        f"cnnlab.SoftmaxCrossEntropy (fused, log-sum-exp) gives {fused:.4f} -> "
        f"{'same' if ok else 'DIFFERENT'}",
        "Its gradient dL/dlogits = (softmax - one-hot) / n:",
        grid((probs - onehot) / 3, decimals=4),
    ]
    return "\n".join(lines), ok
