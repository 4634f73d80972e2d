"""CIFAR-10, binary version: fixed-size records read straight from the tarball or the .bin files.

Each record is 1 label byte then 3,072 pixel bytes: 1,024 red, 1,024 green, 1,024 blue, each a
32x32 image in row-major order (https://www.cs.toronto.edu/~kriz/cifar.html). This is the
"binary version for C programs"; the pickled Python version is never read (unpickling a
downloaded file can run code).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import cast

import numpy as np

from cnnlab.data.download import download_file, resolve_url
from cnnlab.data.locate import find_or_download

#: The six .bin files by name, or the tarball that holds them.
Found = dict[str, Path] | Path

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_DIR = "cifar-10-batches-bin"
BASE_URL = "https://www.cs.toronto.edu/~kriz/"
# The dataset page publishes only an MD5 for the archive; we know no SHA-256 from the authors,
# so the download is verified against this MD5.
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"


def parse_records(data: bytes | bytearray, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Split CIFAR binary records into uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    if len(data) == 0 or len(data) % RECORD:
        raise ValueError(
            f"{source}: {len(data)} bytes is not a whole number of CIFAR-10 records "
            f"({RECORD} bytes each: 1 label + 3072 pixels); the file is truncated or corrupt"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)  # (N, 3073)
    labels = records[:, 0].astype(np.int64)  # (N,)
    images = records[:, 1:].reshape(-1, 3, 32, 32)  # (N, 3, 32, 32): R, G, B planes
    return images, labels


def find_cifar(folder: Path) -> Found | None:
    """The six .bin files (in ``folder`` or ``folder/cifar-10-batches-bin``), else the tarball, else None."""
    for sub in (folder, folder / ARCHIVE_DIR):
        files = {name: sub / name for name in TRAIN_FILES + TEST_FILES}
        if all(p.is_file() for p in files.values()):
            return files
    archive = folder / ARCHIVE
    return archive if archive.is_file() else None


def _read_all(found: Found) -> dict[str, tuple[bytes, str]]:
    if isinstance(found, dict):
        return {name: (path.read_bytes(), str(path)) for name, path in found.items()}
    out = {}
    try:
        with tarfile.open(found, "r:gz") as tar:
            for name in TRAIN_FILES + TEST_FILES:
                member = f"{ARCHIVE_DIR}/{name}"
                # Read members by name: nothing is extracted, so no path in the archive is trusted.
                handle = tar.extractfile(member)
                if handle is None:
                    raise ValueError(f"{found}: {member} is not a regular file")
                out[name] = (handle.read(), f"{found}:{member}")
    except KeyError as exc:
        raise ValueError(
            f"{found}: archive lacks {exc}; expected {ARCHIVE_DIR}/ with "
            + ", ".join(TRAIN_FILES + TEST_FILES)
        ) from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"{found}: corrupt or truncated archive ({exc})") from exc
    return out


def load_cifar_arrays(
    root: str | os.PathLike[str] | None, download: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find (or download) and read CIFAR-10: ``(x_train, y_train, x_test, y_test)``.

    Images come back as (N, 3, 32, 32) float32 in [0, 1], labels as int64.
    """

    def fetch(folder: Path) -> None:
        download_file(resolve_url(BASE_URL, ARCHIVE), folder / ARCHIVE, ARCHIVE_MD5, algorithm="md5")

    # cast: mypy cannot solve the TypeVar of find_or_download through a union return type.
    found = cast(
        Found,
        find_or_download(
            "cifar10",
            root,
            download,
            wanted=f"{ARCHIVE} or the six .bin files",
            find=find_cifar,
            fetch=fetch,
            url=BASE_URL + ARCHIVE,
        ),
    )
    raw = _read_all(found)
    parts = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        pieces = [parse_records(*raw[name]) for name in names]
        images = np.concatenate([p[0] for p in pieces])  # (N, 3, 32, 32)
        x = images.astype(np.float32)
        x /= np.float32(255)
        parts[split] = (x, np.concatenate([p[1] for p in pieces]))
    return parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1]
