"""`cnnlab explain pool`: pooling windows, the chosen values, and where gradients go."""

from __future__ import annotations

import numpy as np

from cnnlab.explain.conv import size_line
from cnnlab.explain.format import grid
from cnnlab.layers.pooling import AvgPool2D, MaxPool2D


def explain_pool(
    h: int, w: int, kernel: int, stride: int | None = None, mode: str = "max", seed: int = 0
) -> tuple[str, bool]:
    """Return (text, ok) for max or average pooling of one small channel.

    ``ok`` says whether the layer's output and gradient equal the window-by-window values
    computed here by hand (False too when the window does not fit the input).
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"--mode must be max or avg. Received: {mode!r}")
    stride = stride or kernel
    lines = [f"{mode} pooling of a {h}x{w} channel, window {kernel}x{kernel}, stride {stride}", ""]
    if kernel > h or kernel > w:
        lines.append(
            f"  the window does not fit: {kernel} > input size {min(h, w)}; "
            f"floor(({min(h, w)} - {kernel}) / {stride}) + 1 < 1"
        )
        return "\n".join(lines), False
    h_line, h_out = size_line(h, kernel, 0, stride)
    w_line, w_out = size_line(w, kernel, 0, stride)
    lines += [f"Output size: height {h_line}, width {w_line}", ""]
    x = np.random.default_rng(seed).integers(0, 10, size=(1, 1, h, w)).astype(np.float64)
    layer = MaxPool2D(kernel, stride=stride) if mode == "max" else AvgPool2D(kernel, stride=stride)
    y = layer.forward(x)
    lines += [
        "Input:",
        grid(x[0, 0]),
        "",
        "Forward: each window and its " + ("largest value" if mode == "max" else "average"),
    ]
    by_hand, dx_by_hand = np.zeros((h_out, w_out)), np.zeros((h, w))
    for i in range(h_out):
        for j in range(w_out):
            r, q = i * stride, j * stride
            win = x[0, 0, r : r + kernel, q : q + kernel]
            value = win.max() if mode == "max" else win.mean()
            by_hand[i, j] = value
            if mode == "max":  # dL/dout = 1 goes to the first largest value of the window
                a, b = divmod(int(np.argmax(win)), kernel)
                dx_by_hand[r + a, q + b] += 1.0
            else:
                dx_by_hand[r : r + kernel, q : q + kernel] += 1.0 / (kernel * kernel)
            lines.append(f"  out[{i},{j}]: window {win.astype(int).ravel().tolist()} -> {value:g}")
    lines += ["Output:", grid(y[0, 0])]
    dx = layer.backward(np.ones_like(y))
    ok = bool(np.allclose(y[0, 0], by_hand) and np.allclose(dx[0, 0], dx_by_hand))
    lines += ["", "Backward with dL/dout = 1 everywhere: where each gradient goes"]
    lines.append(
        "  max: all of it to the (first) largest value of the window; the others get 0"
        if mode == "max"
        else f"  avg: split equally, 1/{kernel * kernel} to every value of the window"
    )
    lines += ["dL/dinput:", grid(dx[0, 0])]
    name = "MaxPool2D" if mode == "max" else "AvgPool2D"
    lines += ["", f"Same numbers as cnnlab.{name} (forward and backward): {'yes' if ok else 'NO'}"]
    return "\n".join(lines), ok
