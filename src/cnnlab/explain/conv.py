"""`cnnlab explain conv`: the output-size formula and every dot product of a convolution."""

from __future__ import annotations

import numpy as np

from cnnlab.explain.format import grid
from cnnlab.layers.conv import Conv2D


def size_line(n: int, f: int, p: int, s: int) -> tuple[str, int]:
    """The lecture's floor((n - f + 2P) / S) + 1 with the numbers, and its value."""
    out = (n - f + 2 * p) // s + 1
    return f"floor(({n} - {f} + 2*{p}) / {s}) + 1 = {out}", out


def explain_conv(
    h: int,
    w: int,
    d: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    filters: int = 1,
    seed: int = 0,
    values: list[float] | None = None,
) -> tuple[str, bool]:
    """Return (text, ok) walking through one convolution on small integer numbers.

    ``values`` optionally gives the input (h*w*d numbers, channel by channel).
    """
    lines = [
        f"Convolution of an input volume {h}x{w}x{d} (h x w x d) with {filters} filter(s) "
        f"{kernel}x{kernel}x{d}, stride S={stride}, padding P={padding}",
        "",
        "Output size, (floor((h - f + 2P) / S) + 1) x (floor((w - f + 2P) / S) + 1) x filters:",
    ]
    if kernel > h + 2 * padding or kernel > w + 2 * padding:
        return "\n".join(lines + _no_fit_lines(h, w, kernel, stride, padding)), False
    h_line, h_out = size_line(h, kernel, padding, stride)
    w_line, w_out = size_line(w, kernel, padding, stride)
    lines += [f"  height: {h_line}", f"  width:  {w_line}", f"  output volume: {h_out} x {w_out} x {filters}"]
    if (h - kernel + 2 * padding) % stride:
        lines.append(
            f"  ({h} - {kernel} + 2*{padding}) is not divisible by {stride}: the floor drops "
            "the last rows/columns the filter cannot reach."
        )

    x, layer = _example(h, w, d, kernel, stride, padding, filters, seed, values)
    y = layer.forward(x)  # (1, K, H_out, W_out)
    weight = layer.params["weight"]  # (K, D, F, F)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    lines += _volume_lines(x, xp, weight, padding)
    ok = True
    for k in range(filters):
        lines += ["", f"Filter {k}: at each output position, the dot product of the window and the filter"]
        fmap, dot_lines = _dot_products(xp, weight[k], (h_out, w_out), kernel, stride)
        ok &= bool(np.allclose(fmap, y[0, k]))
        lines += [*dot_lines, f"Feature map {k} ({h_out}x{w_out}):", grid(fmap)]
    lines += ["", f"Same numbers as cnnlab.Conv2D.forward: {'yes' if ok else 'NO'}"]
    return "\n".join(lines), ok


def _no_fit_lines(h: int, w: int, kernel: int, stride: int, padding: int) -> list[str]:
    """Why a filter larger than the padded input has no position, and what to change."""
    return [
        f"  the filter does not fit: f = {kernel} but the padded input is "
        f"h + 2P = {h} + 2*{padding} = {h + 2 * padding} by w + 2P = {w} + 2*{padding} = "
        f"{w + 2 * padding}.",
        f"  floor(({h} - {kernel} + 2*{padding}) / {stride}) + 1 = "
        f"{(h - kernel + 2 * padding) // stride + 1} < 1: there is no position to place it.",
        "  Use a smaller kernel, more padding, or a larger input.",
    ]


def _example(
    h: int,
    w: int,
    d: int,
    kernel: int,
    stride: int,
    padding: int,
    filters: int,
    seed: int,
    values: list[float] | None,
) -> tuple[np.ndarray, Conv2D]:
    """The input ``(1, D, H, W)`` (``values``, or small integers) and a float64 Conv2D with
    integer weights in -1..1 and zero bias, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    if values is not None:
        if len(values) != h * w * d:
            raise ValueError(
                f"--values must have h*w*d = {h}*{w}*{d} = {h * w * d} numbers. Received: {len(values)}"
            )
        x = np.array(values, dtype=np.float64).reshape(1, d, h, w)
    else:
        x = rng.integers(0, 4, size=(1, d, h, w)).astype(np.float64)  # (1, D, H, W)
    layer = Conv2D(d, filters, kernel, stride=stride, padding=padding).astype(np.float64)
    layer.params["weight"] = rng.integers(-1, 2, size=(filters, d, kernel, kernel)).astype(np.float64)
    layer.params["bias"] = np.zeros(filters)
    return x, layer


def _volume_lines(x: np.ndarray, xp: np.ndarray, weight: np.ndarray, padding: int) -> list[str]:
    """Every input channel (and its padded version) and every filter channel, as grids.

    Shape:
        x: (1, D, H, W); xp: (1, D, H + 2P, W + 2P); weight: (K, D, F, F).
    """
    lines: list[str] = []
    for c in range(x.shape[1]):
        lines += ["", f"Input, channel {c}:", grid(x[0, c])]
        if padding:
            lines += [f"Padded with {padding} ring(s) of zeros:", grid(xp[0, c])]
    for k in range(weight.shape[0]):
        for c in range(weight.shape[1]):
            lines += [
                "",
                f"Filter {k}, channel {c} (the same weights at every position: weight sharing):",
                grid(weight[k, c]),
            ]
    return lines


def _dot_products(
    xp: np.ndarray, filt: np.ndarray, out_size: tuple[int, int], kernel: int, stride: int
) -> tuple[np.ndarray, list[str]]:
    """One filter's feature map, computed window by window, and a line per output position.

    Shape:
        xp: (1, D, H_pad, W_pad); filt: (D, F, F) -> feature map (H_out, W_out).
    """
    h_out, w_out = out_size
    fmap = np.zeros((h_out, w_out))
    lines = []
    for i in range(h_out):
        for j in range(w_out):
            r, q = i * stride, j * stride
            window = xp[0, :, r : r + kernel, q : q + kernel]  # (D, F, F)
            terms = window * filt
            fmap[i, j] = terms.sum()
            shown = (
                " + ".join(
                    f"{a:g}*{b:g}"
                    for a, b in zip(window.ravel(), filt.ravel(), strict=True)
                    if a != 0 and b != 0
                )
                or "0"
            )
            lines.append(
                f"  out[{i},{j}]: padded rows {r}-{r + kernel - 1}, cols {q}-{q + kernel - 1}: "
                f"{shown} = {fmap[i, j]:g}"
            )
    return fmap, lines
