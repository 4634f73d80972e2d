"""CIFAR-10 binary records: generated .bin files and tarball."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from cnnlab.data.cifar import CLASSES, RECORD, TEST_FILES, TRAIN_FILES, parse_records
from cnnlab.data.datasets import load_dataset


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_MIRROR", raising=False)


def records(rng, n):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    data = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes()  # (n, 3073)
    return data, images, labels


def test_parse_records_layout(rng):
    data, images, labels = records(rng, 3)
    x, y = parse_records(data, "t")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    # first record: label byte, then 1024 red pixels of a row-major 32x32 image
    assert data[1] == images[0, 0, 0, 0] and data[1 + 1024 + 33] == images[0, 1, 1, 1]


def test_record_size_validated():
    with pytest.raises(
        ValueError, match=r"batch\.bin: 3072 bytes is not a whole number of CIFAR-10 records \(3073"
    ):
        parse_records(b"\x00" * (RECORD - 1), "batch.bin")


def make_bins(folder, rng, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_FILES + TEST_FILES:
        (folder / name).write_bytes(records(rng, n)[0])


def test_load_bin_folder(tmp_path, rng):
    make_bins(tmp_path / "cifar-10-batches-bin", rng)
    data = load_dataset("cifar10", root=tmp_path, download=False)
    assert data.train.x.shape == (20, 3, 32, 32) and data.test.x.shape == (4, 3, 32, 32)
    assert data.train.x.dtype == np.float32 and 0 <= data.train.x.min() and data.train.x.max() <= 1
    assert data.classes == CLASSES


def test_load_tarball_and_truncated_bin(tmp_path, rng):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in TRAIN_FILES + TEST_FILES:
            payload = records(rng, 2)[0]
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cifar-10-binary.tar.gz").write_bytes(buf.getvalue())
    data = load_dataset("cifar10", root=tmp_path / "c", download=False)
    assert len(data.train) == 10 and len(data.test) == 2

    make_bins(tmp_path / "b", rng)
    (tmp_path / "b" / "test_batch.bin").write_bytes(records(rng, 2)[0][:-5])
    with pytest.raises(ValueError, match=r"test_batch\.bin: 6141 bytes is not a whole number"):
        load_dataset("cifar10", root=tmp_path / "b", download=False)


def test_truncated_tarball(tmp_path):
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match=r"cifar-10-binary\.tar\.gz: corrupt or truncated archive"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_missing_cifar_message(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)cifar10: dataset files not found.*cifar-10-binary\.tar\.gz"
    ):
        load_dataset("cifar10", root=tmp_path, download=False)
