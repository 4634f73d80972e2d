"""IDX reader and the MNIST-style four-file layout, on small generated files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from cnnlab.data import locate
from cnnlab.data.datasets import load_dataset
from cnnlab.data.idx import IDX_FILES, read_idx


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_MIRROR", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array: np.ndarray) -> None:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_mnist(folder, rng, n_train=12, n_test=5, gz=True, h=28, w=28):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for (split, part), base in IDX_FILES.items():
        n = n_train if split == "train" else n_test
        a = (
            rng.integers(0, 256, (n, h, w), dtype=np.uint8)
            if part == "images"
            else (np.arange(n) % 10).astype(np.uint8)
        )
        write_idx(folder / (base + (".gz" if gz else "")), a)
        arrays[split, part] = a
    return arrays


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_read_idx_roundtrip(tmp_path, rng, suffix, dtype):
    a = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    write_idx(tmp_path / f"a.idx{suffix}", a)
    got = read_idx(tmp_path / f"a.idx{suffix}")
    assert got.dtype == dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_root(tmp_path, rng, gz):
    arrays = write_mnist(tmp_path / "m", rng, gz=gz)
    data = load_dataset("mnist", root=tmp_path / "m", download=False)
    assert data.train.x.shape == (12, 1, 28, 28) and data.test.x.shape == (5, 1, 28, 28)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    np.testing.assert_allclose(data.train.x[:, 0], arrays["train", "images"] / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.test.y, arrays["test", "labels"])
    assert data.classes == [str(d) for d in range(10)]


def test_found_under_root_name_and_env(tmp_path, rng, monkeypatch):
    write_mnist(tmp_path / "parent" / "fashion-mnist", rng)
    data = load_dataset("fashion-mnist", root=tmp_path / "parent", download=False)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "parent"))
    assert len(load_dataset("fashion-mnist", download=False).train) == 12


def test_missing_lists_every_place(tmp_path, monkeypatch):
    system = [(tmp_path / "usr-share", "apt-get install dataset-fashion-mnist")]
    monkeypatch.setitem(locate.SYSTEM_DIRS, "fashion-mnist", system)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "nowhere", download=False)
    msg = str(info.value)
    for text in [
        "nowhere",
        str(tmp_path / "cache" / "cnnlab" / "fashion-mnist"),
        str(tmp_path / "usr-share"),
        "CNNLAB_DATA",
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
        "download=True",
    ]:
        assert text in msg


def test_corrupt_magic(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match=r"bad\.idx: not an IDX file \(magic number 01020801"):
        read_idx(tmp_path / "bad.idx")


def test_unknown_dtype_code(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="unknown IDX dtype code 0x07"):
        read_idx(tmp_path / "bad.idx")


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_truncated_data(tmp_path, suffix):
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-100]
    path = tmp_path / f"t.idx{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(
        ValueError, match=r"t\.idx.*declares shape \(4, 28, 28\) \(3136 data bytes\).*(truncated|corrupt)"
    ):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32).reshape(50, 100)))
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match=r"cut\.idx\.gz: corrupt or truncated gzip stream"):
        read_idx(path)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_huge_declared_dims_allocate_nothing(tmp_path, suffix):
    # 2**32-1 cubed bytes could never be allocated: the reader must fail on the data present.
    header = b"\x00\x00\x08\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    data = header + b"\x00" * 64
    path = tmp_path / f"huge.idx{suffix}"
    path.write_bytes(gzip.compress(data) if suffix else data)
    with pytest.raises(ValueError, match=r"huge\.idx.*declares shape \(4294967295, 4294967295, 4294967295\)"):
        read_idx(path)


def test_extra_bytes(tmp_path):
    (tmp_path / "x.idx").write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"junk")
    with pytest.raises(ValueError, match="has 7 data bytes"):
        read_idx(tmp_path / "x.idx")


def test_image_label_count_mismatch(tmp_path, rng):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"mnist: .*t10k-images.*shape \(5, 28, 28\).*shape \(3,\)"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_label_out_of_range(tmp_path, rng):
    write_mnist(tmp_path, rng)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(ValueError, match=r"'mnist/train': labels must be in 0\.\.9"):
        load_dataset("mnist", root=tmp_path, download=False)


@pytest.mark.parametrize(("files_of", "loaded_as"), [("fashion-mnist", "mnist"), ("mnist", "fashion-mnist")])
def test_one_datasets_files_loaded_as_the_other_are_refused(tmp_path, rng, files_of, loaded_as):
    # The four files of Fashion-MNIST given as MNIST (same format, same sizes) trained a run
    # named "mnist" on clothes; their first labels tell them apart.
    from cnnlab.data.idx import FIRST_LABELS
    from cnnlab.errors import CnnlabError

    folder = tmp_path / "d"
    write_mnist(folder, rng, n_train=12, n_test=10)
    train, test = FIRST_LABELS[files_of]
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([*train, 0, 1], np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array(test, np.uint8))
    title = "MNIST" if files_of == "mnist" else "Fashion-MNIST"
    with pytest.raises(
        CnnlabError, match=f"{loaded_as}: the files in {folder} are {title}'s .*--data {files_of}"
    ):
        load_dataset(loaded_as, root=folder, download=False)
    assert load_dataset(files_of, root=folder, download=False).train.y[:10].tolist() == list(train)


def test_the_real_fashion_mnist_files_are_refused_as_mnist():
    from pathlib import Path

    from cnnlab.errors import CnnlabError

    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (CI installs it)")
    with pytest.raises(CnnlabError, match="are Fashion-MNIST's"):
        load_dataset("mnist", root=folder, download=False)
