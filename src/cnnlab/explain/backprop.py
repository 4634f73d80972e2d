"""`cnnlab explain backprop`: the chain rule on f = (x + y) * z, then on a conv layer.

The scalar part uses a tiny computation graph (micrograd style): every operation records
its inputs and the local derivative rule; ``backward`` walks the graph in reverse
topological order multiplying local derivatives (the chain rule).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.explain.format import grid
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.conv import Conv2D


class Value:
    """A scalar that remembers how it was computed, so it can backpropagate."""

    def __init__(self, data: float, parents: tuple[Value, ...] = (), op: str = "", name: str = ""):
        self.data = float(data)
        self.grad = 0.0
        self.parents = parents
        self.op = op
        self.name = name
        self._backward: Callable[[], None] = lambda: None

    def __add__(self, other: Value) -> Value:
        out = Value(self.data + other.data, (self, other), "+")

        def backward() -> None:  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = backward
        return out

    def __mul__(self, other: Value) -> Value:
        out = Value(self.data * other.data, (self, other), "*")

        def backward() -> None:  # d(a*b)/da = b, d(a*b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = backward
        return out

    def backward(self) -> None:
        order: list[Value] = []
        seen: set[int] = set()

        def visit(v: Value) -> None:
            if id(v) not in seen:
                seen.add(id(v))
                for p in v.parents:
                    visit(p)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


def chain_rule_example(x: float = -2.0, y: float = 5.0, z: float = -4.0) -> dict[str, float]:
    """The lecture's example: q = x + y, f = q * z; all values and derivatives."""
    vx, vy, vz = Value(x, name="x"), Value(y, name="y"), Value(z, name="z")
    q = vx + vy
    f = q * vz
    f.backward()
    return {
        "x": x,
        "y": y,
        "z": z,
        "q": q.data,
        "f": f.data,
        "df/dq": q.grad,
        "df/dz": vz.grad,
        "df/dx": vx.grad,
        "df/dy": vy.grad,
    }


def explain_backprop(x: float = -2.0, y: float = 5.0, z: float = -4.0, seed: int = 0) -> tuple[str, bool]:
    """Return (text, ok): the chain rule by hand, by the graph, and by finite differences."""
    r = chain_rule_example(x, y, z)
    eps = 1e-6

    def f(a: float, b: float, c: float) -> float:
        return (a + b) * c

    numeric = {
        "df/dx": (f(x + eps, y, z) - f(x - eps, y, z)) / (2 * eps),
        "df/dy": (f(x, y + eps, z) - f(x, y - eps, z)) / (2 * eps),
        "df/dz": (f(x, y, z + eps) - f(x, y, z - eps)) / (2 * eps),
    }
    ok = all(abs(numeric[k] - r[k]) < 1e-6 for k in numeric)
    lines = [
        "Backpropagation is the chain rule: df/dx = df/dq * dq/dx",
        "",
        f"Forward:  x = {x:g}, y = {y:g}, z = {z:g}",
        f"  q = x + y = {x:g} + {y:g} = {r['q']:g}",
        f"  f = q * z = {r['q']:g} * {z:g} = {r['f']:g}",
        "Backward (local derivatives times the gradient arriving from above):",
        "  df/df = 1",
        f"  df/dz = q = {r['df/dz']:g}",
        f"  df/dq = z = {r['df/dq']:g}",
        f"  df/dx = df/dq * dq/dx = {r['df/dq']:g} * 1 = {r['df/dx']:g}",
        f"  df/dy = df/dq * dq/dy = {r['df/dq']:g} * 1 = {r['df/dy']:g}",
        "Finite differences (f(v + h) - f(v - h)) / 2h with h = 1e-6: "
        + ", ".join(f"{k} = {v:.6f}" for k, v in numeric.items())
        + f"  -> {'agree' if ok else 'DISAGREE'}",
    ]

    # One conv layer: the two updates, for the weights and for the deltas.
    rng = np.random.default_rng(seed)
    layer = Conv2D(1, 1, 2, rng=seed).astype(np.float64)
    layer.params["weight"] = rng.integers(-2, 3, size=(1, 1, 2, 2)).astype(np.float64)
    layer.params["bias"] = np.zeros(1)
    xin = rng.integers(0, 4, size=(1, 1, 3, 3)).astype(np.float64)
    out = layer.forward(xin)
    dout = rng.integers(-1, 2, size=out.shape).astype(np.float64)
    dx = layer.backward(dout)
    assert dx is not None  # needs_input_grad is on by default
    check = gradcheck(layer, xin)
    ok &= check.ok(1e-6)
    lines += [
        "",
        "The same story for a conv layer (3x3 input, one 2x2 filter, stride 1): two updates are",
        "computed in the backward phase, one for the weights and one for the deltas (dL/dinput).",
        "Input:",
        grid(xin[0, 0]),
        "Filter:",
        grid(layer.params["weight"][0, 0]),
        "Forward, feature map:",
        grid(out[0, 0]),
        "Gradient arriving from above, dL/dout:",
        grid(dout[0, 0]),
        "Weights: dL/dw[a,b] = sum over every output position (i,j) of dL/dout[i,j] * input[i+a, j+b]",
        "  (the filter is shared by all positions, so their contributions add up):",
        grid(layer.grads["weight"][0, 0]),
        f"  dL/dbias = sum of dL/dout = {layer.grads['bias'][0]:g}",
        "Deltas: dL/dinput[r,c] = sum of dL/dout[i,j] * w[r-i, c-j] over the windows covering (r,c):",
        grid(dx[0, 0]),
        f"gradcheck (float64 finite differences) max relative error: {check.max_error:.1e} "
        f"-> {'agree' if check.ok(1e-6) else 'DISAGREE'}",
    ]
    return "\n".join(lines), bool(ok)
