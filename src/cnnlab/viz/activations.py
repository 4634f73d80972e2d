"""The lecture's six activation functions and their derivatives, from the cnnlab layers.

Each curve is ``layer.forward(x)`` and each derivative ``layer.backward(ones)`` (for an
elementwise f, dL/dx with dL/dy = 1 is f'(x)), so the picture shows exactly what the
layers compute. Maxout is drawn for one unit with two linear pieces,
max(w1 x + b1, w2 x + b2) with (w1, b1) = (1, 0) and (w2, b2) = (-0.5, -1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Tanh
from cnnlab.layers.dense import Dense
from cnnlab.layers.sequential import Sequential
from cnnlab.viz.figure import new_figure, save

#: Pixel size of the activations PNG (2 rows x 3 panels).
SIZE = (1200, 750)
MAXOUT_PIECES = ((1.0, 0.0), (-0.5, -1.0))  # (w, b) of each linear piece


def activation_curves(x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (f(x), f'(x))`` for the six activations, computed with the layers.

    Example:
        >>> import numpy as np
        >>> f, df = activation_curves(np.array([-1.0, 2.0]))["ReLU"]
        >>> f.tolist(), df.tolist()
        ([0.0, 2.0], [0.0, 1.0])
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)  # (N, 1): N examples, one feature
    dense = Dense(1, 2).astype(np.float64)
    dense.params["weight"][:] = [[w] for w, _ in MAXOUT_PIECES]  # (2, 1)
    dense.params["bias"][:] = [b for _, b in MAXOUT_PIECES]
    layers: dict[str, Any] = {
        "Sigmoid": Sigmoid(),
        "Tanh": Tanh(),
        "ReLU": ReLU(),
        "Leaky ReLU (slope 0.1)": LeakyReLU(0.1),
        "Maxout max(x, -0.5x - 1)": Sequential(dense, Maxout(2)),
        "ELU (alpha 1)": ELU(1.0),
    }
    curves = {}
    for name, layer in layers.items():
        y = layer.forward(x)  # (N, 1)
        dy = layer.backward(np.ones_like(y))  # (N, 1): f'(x) by the chain rule
        curves[name] = (y[:, 0], dy[:, 0])
    return curves


def plot_activations(path: str | os.PathLike[str]) -> Path:
    """Draw f(x) and f'(x) of the six activations on [-4, 4]; save a ``SIZE`` PNG."""
    x = np.linspace(-4.0, 4.0, 801)
    fig = new_figure(*SIZE)
    axes = fig.subplots(2, 3)
    for ax, (name, (y, dy)) in zip(axes.flat, activation_curves(x).items(), strict=True):
        ax.plot(x, y, color="tab:blue", linewidth=2, label="f(x)")
        ax.plot(x, dy, color="tab:orange", linewidth=1.5, linestyle="--", label="f'(x)")
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, loc="upper left")
    fig.suptitle("Activation functions (solid) and their derivatives (dashed)")
    fig.tight_layout()
    return save(fig, path)
