"""DataLoader, Normalizer and stratified_split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.data.loader import DataLoader, Normalizer, stratified_split


def toy(n=10):
    return np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n)


def batches(loader):
    return [yb.tolist() for _, yb in loader]


def test_same_seed_same_batches_new_permutation_each_epoch():
    x, y = toy(20)
    a, b = DataLoader(x, y, 6, rng=7), DataLoader(x, y, 6, rng=7)
    epoch1, epoch2 = batches(a), batches(a)
    assert epoch1 == batches(b) and epoch2 == batches(b)
    assert epoch1 != epoch2
    assert sorted(v for batch in epoch1 for v in batch) == list(range(20))  # every sample once


def test_len_and_drop_last():
    x, y = toy(10)
    loader = DataLoader(x, y, 4, shuffle=False)
    assert len(loader) == 3 and [len(b) for b in batches(loader)] == [4, 4, 2]
    dropped = DataLoader(x, y, 4, drop_last=True, rng=0)
    assert len(dropped) == 2 and [len(b) for b in batches(dropped)] == [4, 4]
    big = DataLoader(x, y, 32)
    assert len(big) == 1 and len(batches(big)[0]) == 10
    with pytest.raises(ValueError, match=r"batch_size=32 is larger than the dataset \(10 samples\)"):
        DataLoader(x, y, 32, drop_last=True)


def test_bad_args():
    x, y = toy(4)
    with pytest.raises(
        ValueError, match=r"argument `batch_size` must be a positive int. Received: batch_size=0"
    ):
        DataLoader(x, y, 0)
    with pytest.raises(ValueError, match=r"argument `y` must be as long as x \(4 samples\)"):
        DataLoader(x, y[:3], 2)


def test_transform_gets_rng_and_batch():
    x, y = toy(6)
    seen = []

    def flip_sign(xb, rng):
        seen.append(isinstance(rng, np.random.Generator))
        return -xb

    loader = DataLoader(x, y, 3, shuffle=False, transform=flip_sign)
    xb, yb = next(iter(loader))
    np.testing.assert_array_equal(xb[:, 0, 0, 0], -yb)
    assert seen == [True]
    assert x.min() == 0  # the dataset itself is untouched


def test_normalizer_state_roundtrip(rng):
    x = (rng.standard_normal((50, 3, 4, 4)) * np.array([1.0, 2.0, 3.0])[None, :, None, None] + 5).astype(
        np.float32
    )
    norm = Normalizer().fit(x)
    z = norm(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    again = Normalizer.from_state(json.loads(json.dumps(norm.state())))
    np.testing.assert_array_equal(again(x), z)
    with pytest.raises(ValueError, match="an NCHW array with 3 channels"):
        norm(x[:, :1])
    with pytest.raises(RuntimeError, match="call fit"):
        Normalizer()(x)


def test_normalizer_constant_channel_is_finite():
    x = np.ones((4, 1, 2, 2), np.float32)
    assert np.isfinite(Normalizer().fit(x)(x)).all()


def test_stratified_split_proportions(rng):
    y = np.repeat(np.arange(3), [50, 30, 20])
    train_idx, val_idx = stratified_split(y, 0.1, rng=3)
    assert len(val_idx) == 10 and len(train_idx) == 90
    assert np.bincount(y[val_idx]).tolist() == [5, 3, 2]
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(100))
    again = stratified_split(y, 0.1, rng=3)
    np.testing.assert_array_equal(again[1], val_idx)
    assert not np.array_equal(stratified_split(y, 0.1, rng=4)[1], val_idx)


def test_stratified_split_bad_fraction():
    with pytest.raises(ValueError, match=r"argument `fraction` must be a number strictly between 0 and 1"):
        stratified_split(np.arange(4), 1.0)
