"""Bundled digits, dataset validation, and the real Fashion-MNIST from Debian's package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data.datasets import ArrayDataset, load_dataset

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_digits():
    data = load_dataset("digits")
    assert data.name == "digits" and data.classes == [str(d) for d in range(10)]
    assert data.train.x.shape == (1437, 1, 8, 8) and data.test.x.shape == (360, 1, 8, 8)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    assert data.train.x.min() == 0 and data.train.x.max() == 1
    levels = np.unique(np.concatenate([data.train.x, data.test.x]) * 16)
    np.testing.assert_allclose(levels, np.arange(17), atol=1e-5)
    counts = np.bincount(data.test.y)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~20% of each class (174..183)
    train_counts = np.bincount(data.train.y)
    assert np.allclose(counts / (counts + train_counts), 0.2, atol=0.01)


def test_digits_split_fixed():
    a, b = load_dataset("digits"), load_dataset("DIGITS")
    np.testing.assert_array_equal(a.test.x, b.test.x)


def test_unknown_name_lists_valid():
    with pytest.raises(
        ValueError, match=r"unknown dataset 'imagenet'. Valid names: digits, mnist, fashion-mnist, cifar10"
    ):
        load_dataset("imagenet")


def good(n=3):
    return np.zeros((n, 1, 2, 2), np.float32), np.zeros(n, np.int64)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((3, 2, 2), np.float32), good()[1], "x must be a 4-D float32 array"),
        (good()[0].astype(np.float64), good()[1], "x must be a 4-D float32 array"),
        (good()[0], good()[1].astype(np.int32), "y must be a 1-D int64 array"),
        (good()[0], good(2)[1], "x has 3 images but y has 2 labels"),
        (good(0)[0], good(0)[1], r"no samples \(N=0\)"),
        (
            good()[0],
            np.array([0, 1, 2]),
            r"labels must be in 0\.\.1 \(2 classes\). Received: labels in 0\.\.2",
        ),
        (np.full((3, 1, 2, 2), np.nan, np.float32), good()[1], "x contains NaN or infinite"),
    ],
)
def test_array_dataset_validation(x, y, match):
    with pytest.raises(ValueError, match=r"ArrayDataset 'toy': " + match):
        ArrayDataset(x, y, ["a", "b"], name="toy")


def test_real_fashion_mnist():
    if not all(
        (FASHION_DIR / f).is_file() for f in ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    ):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs Fashion-MNIST in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
        pytest.skip(f"Fashion-MNIST not in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    data = load_dataset("fashion-mnist", root=FASHION_DIR, download=False)
    assert data.train.x.shape == (60000, 1, 28, 28) and data.test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(data.train.y).tolist() == [6000] * 10
    assert np.bincount(data.test.y).tolist() == [1000] * 10
    assert data.train.x.max() == 1 and data.train.x.min() == 0
