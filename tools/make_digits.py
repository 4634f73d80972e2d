"""Build src/cnnlab/data/digits.npz from the digits copy that scikit-learn bundles (run once).

The 1,797 8x8 digits (pixel values 0..16) are the test set of the UCI ML "Optical Recognition
of Handwritten Digits" dataset (CC BY 4.0, see src/cnnlab/data/DIGITS_LICENSE.txt). They are
stored as uint8 with a fixed stratified 1,437 / 360 train/test split (seed 0), so cnnlab can
load them with NumPy alone and the split never depends on the NumPy version.

Usage: python tools/make_digits.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from cnnlab.data.loader import stratified_split

SEED = 0
OUT = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    assert np.array_equal(images, digits.images), "digits pixels must be integers 0..16"
    labels = digits.target.astype(np.uint8)  # (1797,)
    train_idx, test_idx = stratified_split(labels, 0.2, rng=SEED)
    assert (len(train_idx), len(test_idx)) == (1437, 360)
    np.savez_compressed(
        OUT,
        images=images,
        labels=labels,
        train_idx=train_idx.astype(np.int16),
        test_idx=test_idx.astype(np.int16),
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(train_idx)} train / {len(test_idx)} test")


if __name__ == "__main__":
    main()
