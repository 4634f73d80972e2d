"""Save and load models without pickle: architecture as JSON, weights as plain arrays.

A saved model is one file:

- ``.npz`` (default): every ``state_dict()`` array under its key, plus the header (JSON,
  UTF-8 bytes) as a ``uint8`` array under ``"__cnnlab__"``. Read only with
  ``np.load(path, allow_pickle=False)``, so a file can never run code on load.
- ``.safetensors``: the same arrays; the header JSON in the file's metadata under
  ``"__cnnlab__"`` (needs ``pip install safetensors``).

The header holds the architecture (``to_config``), the dtype, the cnnlab version, the
format version and ``extra`` (class names, input shape, normalization stats ...).

Writes are atomic: a temp file in the same directory is written, flushed, fsynced and then
``os.replace``-d over the target, so an existing file is never left half-written.
Loads check every array's declared shape and dtype against the architecture, and the
architecture's size, before reading any array data.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError
from cnnlab.layers.base import Layer, to_config
from cnnlab.layers.registry import (
    MAX_PARAMETERS,
    build_from_config,
    config_parameter_count,
)
from cnnlab.npzfile import (
    CNNLAB_KINDS,
    MAX_HEADER_BYTES,
    ZIP_ERRORS,
    check_crc,
    check_declared,
    declared_arrays,
    describe_bytes,
    describe_npz,
    open_npz,
    parse_json_header,
    read_json_header,
)

HEADER_KEY = "__cnnlab__"
FORMAT_VERSION = 1

NPZ_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive
_SAFETENSORS_DTYPES = {
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U8": "uint8",
    "BOOL": "bool",
}


# ---- save --------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _header(model: Layer, extra: dict[str, Any] | None) -> str:
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"save: `extra` must be a dict or None. Received: {type(extra).__name__}")
    header = {
        "format": "cnnlab",
        "format_version": FORMAT_VERSION,
        "cnnlab_version": _version(),
        "dtype": str(model.dtype),
        "architecture": to_config(model),
        "extra": extra or {},
    }
    try:
        return json.dumps(header, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save: `extra` (and the architecture) must be JSON-serializable "
            f"(str, numbers, lists, dicts, numpy arrays): {exc}"
        ) from None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cnnlab")
    except Exception:  # not installed (running from a source tree)
        return "unknown"


def save(model: Layer, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s architecture and weights (params and buffers) to one file.

    Args:
        model: any cnnlab layer, usually a ``Sequential``.
        path: ``*.safetensors`` for safetensors, anything else is written as ``.npz``
            (exactly at ``path``; no suffix is added).
        extra: JSON-serializable data stored with the model (numpy arrays become lists).

    Returns:
        The path written.

    Example:
        >>> import os, tempfile
        >>> from cnnlab.layers.sequential import Sequential
        >>> net = Sequential()
        >>> p = save(net, os.path.join(tempfile.mkdtemp(), "net.npz"), extra={"classes": ["a"]})
        >>> load_with_extra(p)[1]
        {'classes': ['a']}
    """
    path = Path(path)
    header = _header(model, extra)
    arrays = model.state_dict()
    if HEADER_KEY in arrays:
        raise ValueError(f"save: a state_dict key may not be named {HEADER_KEY!r}")
    if path.suffix == ".safetensors":
        save_st = _safetensors("save")
        data = save_st({k: np.ascontiguousarray(v) for k, v in arrays.items()}, {HEADER_KEY: header})
        atomic_write(path, lambda f: f.write(data))
    else:
        members: dict[str, Any] = {**arrays, HEADER_KEY: np.frombuffer(header.encode("utf-8"), np.uint8)}
        atomic_write(path, lambda f: np.savez(f, **members))
    return path


# ---- load --------------------------------------------------------------------------------
def load(path: str | os.PathLike[str], max_parameters: int = MAX_PARAMETERS) -> Layer:
    """Load a model written by ``save`` (architecture and weights, in the saved dtype)."""
    return load_with_extra(path, max_parameters)[0]


def load_with_extra(
    path: str | os.PathLike[str], max_parameters: int = MAX_PARAMETERS
) -> tuple[Layer, dict[str, Any]]:
    """Load a model written by ``save`` and the ``extra`` dict stored with it.

    Raises:
        FileNotFoundError: no file at ``path``.
        CnnlabError: not a cnnlab npz/safetensors file, a missing or invalid header, a
            too-large architecture, object or non-numeric arrays, missing/unexpected keys,
            or arrays whose shapes do not match the architecture.
        ValueError: an unknown layer type in the architecture (known types listed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no model file at {str(path)!r}")
    with open(path, "rb") as f:
        magic = f.read(9)
    if magic.startswith(NPZ_MAGIC):
        return _load_npz(path, max_parameters)
    if len(magic) == 9 and magic[8:9] == b"{":
        return _load_safetensors(path, max_parameters)
    raise CnnlabError(
        f"load: {str(path)!r} is not a cnnlab model file: it is {describe_bytes(magic, path.suffix)}; "
        f"expected an .npz (zip, starts with {NPZ_MAGIC!r}) or a .safetensors file written by "
        f"cnnlab.save. Received: first bytes {magic!r}"
    )


def _check_header(header: Any, path: Path) -> dict[str, Any]:
    """The parsed header, checked: a cnnlab model header of a supported version."""
    where = f"load: {str(path)!r}"
    if not isinstance(header, dict) or header.get("format") != "cnnlab" or "architecture" not in header:
        raise CnnlabError(
            f"{where}: the {HEADER_KEY!r} header must be a JSON object with "
            f"'format': 'cnnlab' and 'architecture'. Received keys: "
            f"{sorted(header) if isinstance(header, dict) else type(header).__name__}"
        )
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CnnlabError(
            f"{where}: format_version {version!r} is not supported by this cnnlab "
            f"(reads versions up to {FORMAT_VERSION}); upgrade cnnlab"
        )
    dtype: np.dtype[Any]
    try:
        dtype = np.dtype(header.get("dtype", "float32"))
    except TypeError:
        dtype = np.dtype(object)
    if dtype.kind != "f":
        raise CnnlabError(f"{where}: header dtype must be a float dtype. Received: {header.get('dtype')!r}")
    if not isinstance(header.get("extra", {}), dict):
        raise CnnlabError(f"{where}: header 'extra' must be a JSON object")
    return header


def _model_from_header(header: dict[str, Any], path: Path, max_parameters: int, stored: int) -> Layer:
    """Build the header's architecture; ``stored``: how many values the file's arrays hold."""
    declared = config_parameter_count(header["architecture"])
    if max_parameters >= declared > stored:  # checked before building: nothing allocated yet
        raise CnnlabError(
            f"load: {str(path)!r}: the architecture declares {declared:,} parameters but the "
            f"file stores only {stored:,} values (corrupt or crafted header)"
        )
    try:
        model = build_from_config(header["architecture"], max_parameters)
    except CnnlabError as exc:
        raise CnnlabError(f"load: {str(path)!r}: {exc}") from None
    except (AttributeError, KeyError, TypeError, RecursionError) as exc:
        raise CnnlabError(f"load: {str(path)!r}: invalid architecture in the header: {exc!r}") from None
    return model.astype(np.dtype(header.get("dtype", "float32")))


def _check_declared(
    model: Layer, declared: Iterable[tuple[str, tuple[int, ...], np.dtype]], path: Path
) -> None:
    """Compare each stored array's declared shape/dtype with the model, before reading data."""
    expected = {k: (v.shape, "architecture") for k, v in model.state_dict().items()}
    mismatch = "stored arrays do not match the architecture"
    check_declared(declared, expected, f"load: {str(path)!r}", "fiub", mismatch)


def _not_a_model(npz: Any, path: Path, where: str) -> str:
    """The error for an .npz without the model header: what the file is instead, and what to load."""
    kind = describe_npz(npz)
    if kind == CNNLAB_KINDS["__checkpoint__"]:
        model = path.parent / "model.npz"
        return (
            f"{where} is {kind}, not a model file: load {str(model)!r}, which the run writes when "
            f"it ends (an unfinished run: `cnnlab train --resume {path.parent}` finishes it)"
        )
    if kind is not None:
        return f"{where} is not a cnnlab model file: it is {kind}"
    return (
        f"{where}: no {HEADER_KEY!r} header array; this .npz was not written by "
        "cnnlab.save (for bare weights use np.load and model.load_state_dict)"
    )


def _load_npz(path: Path, max_parameters: int) -> tuple[Layer, dict[str, Any]]:
    where = f"load: {str(path)!r}"
    npz = open_npz(path, where, "a cnnlab model file")
    with npz:
        missing = _not_a_model(npz, path, where)
        try:
            header = _check_header(read_json_header(npz, HEADER_KEY, where, missing), path)
        except CnnlabError:
            raise
        except ZIP_ERRORS as exc:
            raise CnnlabError(f"{where}: corrupt header data: {exc}") from None
        try:
            declared = declared_arrays(npz, skip=HEADER_KEY)
        except CnnlabError:
            raise
        except ZIP_ERRORS as exc:
            raise CnnlabError(f"{where}: corrupt or unreadable array data: {exc}") from None
        stored = sum(math.prod(shape) for _, shape, _ in declared)
        model = _model_from_header(header, path, max_parameters, stored)
        try:
            _check_declared(model, declared, path)
            check_crc(npz, where)
            state = {key: npz[key] for key in npz.files if key != HEADER_KEY}
        except CnnlabError:
            raise
        except ZIP_ERRORS as exc:
            raise CnnlabError(f"{where}: corrupt or unreadable array data: {exc}") from None
    model.load_state_dict(state)
    return model, header.get("extra", {})


def _safetensors(what: str) -> Any:
    try:
        import safetensors.numpy as st
    except ImportError:
        raise CnnlabError(
            f"{what}: .safetensors files need the safetensors package: "
            "pip install safetensors (or pip install 'cnnlab[train]')"
        ) from None
    return st.save if what == "save" else st.load


def _load_safetensors(path: Path, max_parameters: int) -> tuple[Layer, dict[str, Any]]:
    where = f"load: {str(path)!r}"
    data = path.read_bytes()
    # The format: u64 little-endian header length, the JSON header, then raw tensor bytes.
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(MAX_HEADER_BYTES, len(data) - 8):
        raise CnnlabError(f"{where}: safetensors header length {length} is larger than the file")
    try:
        table = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CnnlabError(f"{where}: the safetensors header is not valid JSON ({exc})") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise CnnlabError(f"{where}: the safetensors header must map names to {{dtype, shape, ...}}")
    meta = table.pop("__metadata__", None)
    if not isinstance(meta, dict) or HEADER_KEY not in meta:
        raise CnnlabError(f"{where}: no {HEADER_KEY!r} entry in the safetensors metadata")
    header = _check_header(parse_json_header(str(meta[HEADER_KEY]).encode("utf-8"), where, HEADER_KEY), path)
    declared = [
        (key, tuple(info.get("shape", ())), np.dtype(_SAFETENSORS_DTYPES.get(info.get("dtype"), "O")))
        for key, info in table.items()
    ]
    dims = [d for _, shape, _ in declared for d in shape]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise CnnlabError(f"{where}: safetensors shapes must be lists of non-negative ints")
    # A tensor can hold no more values than the file has bytes.
    stored = min(sum(math.prod(shape) for _, shape, _ in declared), len(data))
    model = _model_from_header(header, path, max_parameters, stored)
    _check_declared(model, declared, path)
    try:
        state = _safetensors("load")(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise CnnlabError(f"{where}: corrupt safetensors data: {exc}") from None
    model.load_state_dict(state)
    return model, header.get("extra", {})
