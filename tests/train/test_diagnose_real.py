"""Diagnosis of real Fashion-MNIST runs: a tiny model underfits, a big one on 1,000 images overfits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.models import build_model
from cnnlab.train.analysis.diagnose import diagnose
from cnnlab.train.loop.fit import fit

DEBIAN = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def fashion():
    if not DEBIAN.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must install Debian's dataset-fashion-mnist")
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return load_dataset("fashion-mnist", download=False)


def test_tiny_model_underfits(fashion) -> None:
    x, y = fashion.train.x[:6000], fashion.train.y[:6000]
    tiny = cnnlab.Sequential(
        cnnlab.Conv2D(1, 2, 3, stride=2, rng=0),
        cnnlab.ReLU(),
        cnnlab.GlobalAvgPool2D(),
        cnnlab.Dense(2, 10, rng=0),
    )
    opt = cnnlab.Adam(tiny.parameters(), lr=3e-2)
    history = fit(
        tiny,
        cnnlab.SoftmaxCrossEntropy(),
        opt,
        (x, y),
        val_split=0.2,
        epochs=8,
        batch_size=128,
        verbose=False,
    )
    result = diagnose(history.rows)
    assert result.verdict == "underfitting", str(result)
    assert any("deeper or wider" in a for a in result.advice)


def test_big_model_on_1000_images_overfits(fashion) -> None:
    train = (fashion.train.x[:1000], fashion.train.y[:1000])
    val = (fashion.train.x[50000:51000], fashion.train.y[50000:51000])
    model = build_model("small", 1, (28, 28), 10, rng=0)  # 421,642 parameters, no regularization
    opt = cnnlab.Adam(model.parameters(), lr=1e-3)
    history = fit(
        model, cnnlab.SoftmaxCrossEntropy(), opt, train, val_data=val, epochs=20, batch_size=32, verbose=False
    )
    result = diagnose(history.rows)
    assert result.verdict == "overfitting", str(result)
    assert any("augmentation" in a for a in result.advice)
