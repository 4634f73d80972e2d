"""Reading cnnlab's ``.npz`` files safely: a JSON header plus numeric arrays, no pickle.

Model files (``cnnlab.io``) and training checkpoints (``cnnlab.train.loop.checkpoint``) are
both an ``.npz`` holding a JSON header (UTF-8 bytes as a 1-D ``uint8`` array under one
key) beside plain arrays. This module is the one reader both use: it opens the archive
with ``allow_pickle=False``, reads the header, and reports every array's declared shape
and dtype from its ``.npy`` header before any array data is read, so a truncated,
corrupt or crafted file is refused before anything large is allocated.

``open_npz`` opens the archive: a file that is not a zip archive at all (a text file, a
single ``.npy``, a pickle) is refused first with what it is, because ``np.load`` would
instead treat it as a pickle and suggest loading it "unsafely using allow_pickle=", which
cnnlab never does (issue 23). ``describe_npz`` says what an .npz without the expected
header is (a training checkpoint where a model was expected, a PyTorch file).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError

#: Largest header (JSON) accepted, in bytes.
MAX_HEADER_BYTES = 64 * 2**20

#: What zipfile and numpy raise on damaged archives (bad CRC, unknown zip versions or
#: compression, encrypted flags, short reads); CnnlabError (a RuntimeError) is re-raised as is.
ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
    ValueError, struct.error, UnicodeDecodeError, zlib.error,
)  # fmt: skip

#: Largest deflate expansion (about 1032:1): a member can never hold more than this.
_MAX_DEFLATE_RATIO = 1100

#: The first bytes of a zip archive (an .npz): a local file header, or an empty archive.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: The header member of each kind of cnnlab .npz file -> what such a file is.
CNNLAB_KINDS = {
    "__cnnlab__": "a cnnlab model file (written by cnnlab.save)",
    "__checkpoint__": "a training checkpoint of `cnnlab train` (weights and optimizer state to resume from)",
}
#: What cnnlab offers for a PyTorch file (it never unpickles one).
TORCH_ADVICE = (
    "cnnlab never loads pickled files: load it with torch.load into your torch.nn.Module and "
    "convert the module with cnnlab.interop.from_torch(module), then cnnlab.save it"
)


def describe_bytes(head: bytes, suffix: str = "") -> str:
    """What a file that is not a zip archive is, from its first bytes (and its suffix).

    Example:
        >>> describe_bytes(b"hello\\n")
        'a text file'
        >>> describe_bytes(b"\\x93NUMPY\\x01\\x00")
        'a single NumPy array (.npy, written by np.save), not an .npz archive'
    """
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return "a single NumPy array (.npy, written by np.save), not an .npz archive"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras .h5 model?), not an .npz archive"
    if suffix.lower() in (".pt", ".pth") or head[:1] == b"\x80":
        return f"a pickle file (an older torch.save?), not an .npz archive; {TORCH_ADVICE}"
    if suffix.lower() == ".onnx":
        return "an ONNX model, not an .npz archive (cnnlab exports ONNX but does not read it)"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file, not an .npz archive"
    if all(32 <= c < 127 or c in b"\t\r\n" for c in head):
        return "a text file"
    return "not a zip archive (an .npz is one)"


def open_npz(path: str | os.PathLike[str], where: str, expected: str) -> Any:
    """``np.load(path, allow_pickle=False)`` of a file that must be ``expected``, e.g. "a cnnlab checkpoint".

    A file that is not a zip archive is refused before numpy sees it, with what it is
    (``describe_bytes``); numpy would call it pickled data and suggest ``allow_pickle``.

    Raises:
        CnnlabError: ``{where} is not {expected}: ...`` for a file that is not a zip archive;
            ``{where} is not a readable .npz file`` for a damaged one.
    """
    with open(path, "rb") as f:
        head = f.read(16)
    if not head.startswith(ZIP_MAGIC):
        what = describe_bytes(head, Path(path).suffix)
        raise CnnlabError(f"{where} is not {expected}: it is {what}. Received: first bytes {head!r}")
    try:
        return np.load(path, allow_pickle=False)
    except ZIP_ERRORS as exc:
        raise CnnlabError(f"{where} is not a readable .npz file (truncated or corrupt?): {exc}") from None


def describe_npz(npz: Any) -> str | None:
    """What an open .npz archive is: a kind of cnnlab file, a PyTorch file, or None (unknown)."""
    for key, kind in CNNLAB_KINDS.items():
        if key in npz.files:
            return kind
    if any(name.endswith("data.pkl") for name in npz.zip.namelist()):
        return f"a PyTorch file (torch.save, a zip archive holding a pickle); {TORCH_ADVICE}"
    return None


def parse_json_header(raw: bytes, where: str, key: str) -> Any:
    """``raw`` (UTF-8 JSON) parsed, or the CnnlabError naming ``where`` and the header ``key``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CnnlabError(f"{where}: the {key!r} header is not valid JSON ({exc!r})") from None


def read_json_header(npz: Any, key: str, where: str, missing: str) -> Any:
    """The JSON header stored under ``key`` in an open ``np.load`` archive, parsed.

    Args:
        npz: the ``NpzFile`` (opened with ``allow_pickle=False``).
        key: the header's member name, e.g. ``"__cnnlab__"``.
        where: the start of every error message (names the file).
        missing: the whole error message when there is no ``key`` member.
    """
    if key not in npz.files:
        raise CnnlabError(missing)
    shape, dtype = npz_member_declared(npz, key)  # before reading: it may lie
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise CnnlabError(f"{where}: the {key!r} header must be a 1-D uint8 array")
    return parse_json_header(bytes(npz[key].tobytes()), where, key)


def declared_arrays(npz: Any, skip: str) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """``(key, shape, dtype)`` of every member but ``skip`` (the header), from .npy headers only."""
    return [(key, *npz_member_declared(npz, key)) for key in npz.files if key != skip]


def check_declared(
    declared: Iterable[tuple[str, tuple[int, ...], np.dtype]],
    expected: dict[str, tuple[tuple[int, ...], str]],
    where: str,
    kinds: str,
    mismatch: str,
) -> None:
    """Compare declared arrays with the expected ones, before any array data is read.

    Args:
        declared: ``(key, shape, dtype)`` of each stored array (``declared_arrays``).
        expected: key -> (shape, what it belongs to, e.g. "architecture" or "optimizer").
        where: the start of every error message (names the file).
        kinds: the accepted dtype kinds, e.g. ``"f"`` (float) or ``"fiub"`` (numeric).
        mismatch: the sentence that opens the missing/unexpected-keys error.
    """
    seen = []
    for key, shape, dtype in declared:
        seen.append(key)
        if dtype.kind not in kinds:
            accepted = "float" if kinds == "f" else "numeric"
            raise CnnlabError(
                f"{where}: array `{key}` has dtype {dtype}; only {accepted} arrays are accepted "
                "(object arrays would need pickle, which cnnlab never uses)"
            )
        if key in expected and tuple(shape) != expected[key][0]:
            raise CnnlabError(
                f"{where}: array `{key}` does not match the {expected[key][1]}: "
                f"expected shape {expected[key][0]}. Received: shape {tuple(shape)}"
            )
    missing = [k for k in expected if k not in seen]
    unexpected = [k for k in seen if k not in expected]
    if missing or unexpected:
        raise CnnlabError(
            f"{where}: {mismatch}. Missing: {missing or 'none'}. Unexpected: {unexpected or 'none'}"
        )


def npz_member_declared(npz: Any, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npz member declares, checked against the bytes it holds.

    Reads only the member's .npy header. Refuses members that are not .npy arrays, object
    dtypes, and declared sizes larger than the member (numpy would allocate the declared
    size before noticing the data is missing), so nothing is allocated from a lie.
    """
    name = key + ".npy"
    if name not in npz.zip.NameToInfo:
        raise CnnlabError(f"load: member `{key}` is not an .npy array")
    info = npz.zip.getinfo(name)
    with npz.zip.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise CnnlabError(f"load: array `{key}` uses unsupported .npy version {version}")
    if dtype.hasobject:
        raise CnnlabError(
            f"load: array `{key}` has dtype {dtype}; object arrays would need pickle, which cnnlab never uses"
        )
    declared = math.prod(shape) * dtype.itemsize
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO
    if declared > min(info.file_size, info.compress_size * ratio):
        raise CnnlabError(
            f"load: array `{key}` declares shape {tuple(shape)} ({declared:,} bytes) but its "
            f"member holds only {info.file_size:,} bytes (truncated, corrupt or crafted file)"
        )
    return tuple(shape), dtype


def check_crc(npz: Any, where: str) -> None:
    """Verify every member's CRC-32 (numpy's reader stops before the check would run)."""
    bad = npz.zip.testzip()  # reads each member in 1 MiB blocks
    if bad is not None:
        raise CnnlabError(f"{where}: member {bad!r} fails its CRC check (corrupt file: bytes changed)")
