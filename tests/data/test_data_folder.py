"""Image-folder datasets from generated PNG files."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.datasets import load_dataset

Image = pytest.importorskip("PIL.Image")


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_grayscale_split_and_non_image_skipped(tmp_path, rng):
    for cls in ("cat", "dog"):
        for i in range(5):
            save(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (6, 5), dtype=np.uint8))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"skipping .*notes\.txt"):
        data = load_dataset(str(tmp_path))
    assert data.classes == ["cat", "dog"]
    assert data.train.x.shape == (8, 1, 6, 5) and data.test.x.shape == (2, 1, 6, 5)
    assert np.bincount(data.test.y).tolist() == [1, 1]
    assert data.train.x.dtype == np.float32 and data.train.x.max() <= 1


def test_rgb_mixed_sizes_resized_to_most_common(tmp_path, rng):
    save(tmp_path / "train" / "a" / "0.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    save(tmp_path / "train" / "a" / "1.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    save(tmp_path / "train" / "b" / "0.jpg", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    save(tmp_path / "test" / "b" / "0.png", rng.integers(0, 256, (4, 4), dtype=np.uint8))
    data = load_dataset(tmp_path)
    assert data.train.x.shape == (3, 3, 8, 8) and data.test.x.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(data.test.y, [1])
    gray = load_dataset(tmp_path, channels=1, size=(5, 7))
    assert gray.train.x.shape == (3, 1, 5, 7)


def test_gray_image_converted_to_three_equal_channels(tmp_path, rng):
    save(tmp_path / "a" / "0.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    save(tmp_path / "a" / "1.png", np.full((4, 4), 7, np.uint8))
    save(tmp_path / "b" / "0.png", np.full((4, 4), 9, np.uint8))
    save(tmp_path / "b" / "1.png", np.full((4, 4), 9, np.uint8))
    data = load_dataset(tmp_path, test_fraction=0.5)
    x = np.concatenate([data.train.x, data.test.x])
    assert x.shape[1] == 3
    assert np.isclose(x, 9 / 255).all(axis=(1, 2, 3)).sum() == 2


def test_unreadable_image_named(tmp_path, rng):
    save(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_dataset(tmp_path)


def test_empty_class_and_no_classes(tmp_path):
    save(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*empty has no \.png/\.jpg/\.jpeg images"):
        load_dataset(tmp_path)
    (tmp_path / "flat").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(tmp_path / "flat")


def test_pillow_missing_message(tmp_path, monkeypatch):
    import sys

    save(tmp_path / "a" / "0.png", np.zeros((4, 4), np.uint8))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install pillow \(or pip install cnnlab\[train\]\)"):
        load_dataset(tmp_path)
