"""IDX files (MNIST, Fashion-MNIST): a validating reader and the four-file dataset layout.

IDX layout (http://yann.lecun.com/exdb/mnist/): two zero bytes, a dtype code, the number of
dimensions, one big-endian uint32 per dimension, then the values, big-endian, row-major.
The header is checked against the bytes actually present before any array is built, and a
gzip stream is read in chunks, so a corrupt header that declares terabytes allocates nothing.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from cnnlab.data.download import download_file, resolve_url
from cnnlab.data.locate import find_or_download
from cnnlab.errors import CnnlabError

#: IDX dtype codes -> big-endian NumPy dtypes.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

#: The four files, as (split, part) -> base name; ".gz" is appended for the compressed form.
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

#: Official sources. Their authors publish MD5s only, so MD5 is what we verify: the SHA-256 of
#: the original .gz files is not published, and Debian's dataset-fashion-mnist files are
#: re-compressed (24 bytes smaller, other MD5), so their SHA-256 would not match the originals.
SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    # MD5s as listed by torchvision.datasets.MNIST for this mirror.
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    # MD5s from the table in zalandoresearch/fashion-mnist's README.
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
}

#: The first ten training and test labels of the published files (MNIST's as torchvision and
#: every MNIST tutorial print them; Fashion-MNIST's read from its files): the four files of one
#: dataset given as the other (``--data mnist --data-dir`` a Fashion-MNIST folder) are told
#: apart, whatever their compression. Files that match neither (your own data) pass.
FIRST_LABELS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "mnist": ((5, 0, 4, 1, 9, 2, 1, 3, 1, 4), (7, 2, 1, 0, 4, 1, 4, 9, 5, 9)),
    "fashion-mnist": ((9, 0, 0, 3, 0, 2, 7, 2, 5, 5), (9, 2, 1, 1, 6, 1, 4, 6, 5, 7)),
}

CHUNK = 1 << 20


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (raw, or gzip-compressed when the name ends in .gz) into a native array.

    Raises:
        ValueError: bad magic number, unknown dtype code, zero dimensions, or a size that does
            not match the header (truncated or extra data, truncated gzip); the message names
            the file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return _parse(f, path, available=None)
        with open(path, "rb") as f:
            return _parse(f, path, available=os.fstat(f.fileno()).st_size)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc


def _parse(f: io.BufferedIOBase, path: Path, available: int | None) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file (magic number {magic.hex() or 'missing'}, "
            "expected 0000 then a dtype code and the number of dimensions)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise ValueError(
            f"{path}: unknown IDX dtype code 0x{code:02X} (known: "
            + ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
            + ")"
        )
    if not 1 <= ndim <= 8:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions, expected 1 to 8")
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({4 + len(header)} bytes, expected {4 + 4 * ndim})")
    dims = struct.unpack(f">{ndim}I", header)
    itemsize = np.dtype(IDX_DTYPES[code]).itemsize
    expected = math.prod(dims) * itemsize
    if available is not None and available != 4 + 4 * ndim + expected:
        raise ValueError(
            f"{path}: IDX header declares shape {dims} ({expected} data bytes) but the file "
            f"has {available - 4 - 4 * ndim} data bytes (truncated or corrupt)"
        )
    data = _read_at_most(f, expected)
    if len(data) < expected:
        raise ValueError(
            f"{path}: IDX header declares shape {dims} ({expected} data bytes) but the data "
            f"ends after {len(data)} bytes (truncated file)"
        )
    if f.read(1):
        raise ValueError(
            f"{path}: extra bytes after the {expected} data bytes of shape {dims} (corrupt file)"
        )
    array = np.frombuffer(data, dtype=IDX_DTYPES[code]).reshape(dims)  # (d0, d1, ...)
    return array.astype(array.dtype.newbyteorder("="))


def _read_at_most(f: io.BufferedIOBase, n: int) -> bytearray:
    """Read up to n bytes in 1 MiB chunks: memory grows with the data present, not with n."""
    buf = bytearray()
    while len(buf) < n:
        block = f.read(min(CHUNK, n - len(buf)))
        if not block:
            break
        buf += block
    return buf


def find_idx_files(folder: Path) -> dict[tuple[str, str], Path] | None:
    """The four IDX files in ``folder`` (``x.gz``, ``x`` or ``train-images.idx3-ubyte`` style), or None."""
    found = {}
    for key, base in IDX_FILES.items():
        dotted = base.replace("-idx", ".idx")  # train-images.idx3-ubyte, as some archives unpack
        candidates = [folder / f"{base}.gz", folder / base, folder / dotted, folder / f"{dotted}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found[key] = hit
    return found


def load_idx_arrays(
    name: str, root: str | os.PathLike[str] | None, download: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find (or download) and read MNIST-style data: ``(x_train, y_train, x_test, y_test)``.

    Images come back as (N, 1, H, W) float32 in [0, 1], labels as int64.
    """
    base_url, md5s = SOURCES[name]

    def fetch(folder: Path) -> None:
        for filename, md5 in md5s.items():
            if not (folder / filename).is_file():
                download_file(resolve_url(base_url, filename), folder / filename, md5, algorithm="md5")

    files = find_or_download(
        name,
        root,
        download,
        wanted=", ".join(md5s) + " (or uncompressed)",
        find=find_idx_files,
        fetch=fetch,
        url=base_url,
    )
    arrays = {}
    for split in ("train", "test"):
        images, labels = read_idx(files[split, "images"]), read_idx(files[split, "labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{name}: {files[split, 'images']} has shape {images.shape} and "
                f"{files[split, 'labels']} has shape {labels.shape}; expected (N, H, W) and (N,)"
            )
        arrays[split] = (_scale_images(images), labels.astype(np.int64))
    check_identity(name, files["train", "labels"].parent, arrays["train"][1], arrays["test"][1])
    return arrays["train"][0], arrays["train"][1], arrays["test"][0], arrays["test"][1]


def check_identity(name: str, folder: Path, y_train: np.ndarray, y_test: np.ndarray) -> None:
    """Refuse the files of another known dataset loaded as ``name`` (by ``FIRST_LABELS``).

    Example:
        >>> y_train = np.array([5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3])
        >>> y_test = np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
        >>> check_identity("mnist", Path("data"), y_train, y_test)  # MNIST's own files: fine
        >>> check_identity("fashion-mnist", Path("data"), y_train, y_test)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cnnlab.errors.CnnlabError: fashion-mnist: the files in data are MNIST's ...
    """
    titles = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
    first = (tuple(y_train[:10].tolist()), tuple(y_test[:10].tolist()))
    for other, labels in FIRST_LABELS.items():
        if other != name and first == labels:
            raise CnnlabError(
                f"{name}: the files in {folder} are {titles[other]}'s (their first training and test "
                f"labels are), not {titles[name]}'s: what is trained or tested on them would carry the "
                f"wrong name. Use --data {other}, or give --data-dir the folder of {titles[name]}'s files"
            )


def _scale_images(images: np.ndarray) -> np.ndarray:
    x = images[:, None, :, :].astype(np.float32)  # (N, 1, H, W)
    x /= np.float32(255)
    return x


__all__ = ["find_idx_files", "load_idx_arrays", "read_idx"]
