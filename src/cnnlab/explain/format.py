"""Small text helpers for learn mode: matrices as aligned grids."""

from __future__ import annotations

import numpy as np


def grid(a: np.ndarray, indent: str = "  ", decimals: int = 2) -> str:
    """A 2-D array as aligned rows; integers without decimals, -inf as '-inf'."""
    a = np.asarray(a, dtype=np.float64)
    is_int = np.all(np.isfinite(a) & (a == np.round(a)) | np.isinf(a))
    cells = [
        ["-inf" if v == -np.inf else (f"{v:.0f}" if is_int else f"{v:.{decimals}f}") for v in row]
        for row in a
    ]
    width = max((len(c) for row in cells for c in row), default=1)
    return "\n".join(indent + " ".join(c.rjust(width) for c in row) for row in cells)


def parse_volume(text: str) -> tuple[int, int, int]:
    """'HxWxD' (or 'HxW') -> (H, W, D)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 2:
        parts.append(1)
    if len(parts) != 3 or min(parts) < 1:
        raise ValueError(f"--input must be HxWxD with positive sizes, e.g. 5x5x1. Received: {text!r}")
    return parts[0], parts[1], parts[2]
