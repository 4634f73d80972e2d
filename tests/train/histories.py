"""Synthetic learning curves of each diagnosis verdict, shared by the diagnosis and advice tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def rows(train_loss, val_loss, train_acc, val_acc) -> list[dict[str, Any]]:
    return [
        {
            "epoch": i + 1,
            "train_loss": tl,
            "val_loss": vl,
            "train_accuracy": ta,
            "val_accuracy": va,
            "lr": 0.01,
        }
        for i, (tl, vl, ta, va) in enumerate(zip(train_loss, val_loss, train_acc, val_acc, strict=True))
    ]


E = np.arange(12)
CASES = {
    "overfitting": rows(
        1.0 * 0.7**E,
        [1.0, 0.7, 0.5, 0.4, 0.38, 0.4, 0.45, 0.5, 0.55, 0.6, 0.66, 0.72],
        1 - 0.5 * 0.6**E,
        [0.6, 0.75, 0.82, 0.85, 0.86, 0.86, 0.85, 0.85, 0.84, 0.84, 0.84, 0.84],
    ),
    "underfitting": rows(0.9 + 0.5 * 0.3**E, 0.92 + 0.5 * 0.3**E, 0.68 - 0.2 * 0.3**E, 0.67 - 0.2 * 0.3**E),
    "undertrained": rows(2.0 * 0.85**E, 2.1 * 0.87**E, 1 - 0.9 * 0.85**E, 1 - 0.9 * 0.87**E),
    "good_fit": rows(0.1 + 2 * 0.3**E, 0.12 + 2 * 0.3**E, 0.98 - 0.5 * 0.3**E, 0.97 - 0.5 * 0.3**E),
    "diverging": rows(
        [2.3, 1.5, 1.2, 3.5, 8.0, math.nan],
        [2.3, 1.6, 1.3, 4.0, 9.0, math.nan],
        [0.1, 0.4, 0.5, 0.2, 0.1, 0.1],
        [0.1, 0.4, 0.5, 0.2, 0.1, 0.1],
    ),
}
