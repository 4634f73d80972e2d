"""Reading a run folder's JSON files (config.json, metrics.json ...) with errors that name the file.

``json.loads`` says ``Expecting value: line 2 column 1 (char 3)`` and nothing about which of a
run's files is broken; a user with a truncated ``metrics.json`` could not tell it from a bug
(issue 23). Every read of a run-folder JSON file goes through ``read_json`` (or
``read_json_object``), whose error names the file, says it is not valid JSON, and where.
"""

from __future__ import annotations

import json
import os
from typing import Any

#: ``missing=REQUIRED``: a file that does not exist raises FileNotFoundError.
REQUIRED: Any = object()


class InvalidJSONFile(ValueError):
    """A file that is not valid JSON (or not the JSON value expected); the message names it."""


def read_json(path: str | os.PathLike[str], missing: Any = REQUIRED) -> Any:
    """The JSON value in the file ``path``; ``missing`` when there is no such file (if given).

    Raises:
        FileNotFoundError: no file at ``path`` and no ``missing`` value given.
        InvalidJSONFile: the file is not UTF-8 JSON; the message names it, and the line and
            column where parsing stopped.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "metrics.json")
        >>> _ = open(p, "w").write('{"accuracy":\\n')
        >>> try:
        ...     read_json(p)
        ... except InvalidJSONFile as exc:
        ...     print(str(exc).replace(p, "RUN/metrics.json"))
        RUN/metrics.json is not valid JSON (Expecting value at line 2 column 1; a truncated or
        hand-edited file?)
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if missing is REQUIRED:
            raise
        return missing
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise InvalidJSONFile(f"{os.fspath(path)} is not valid JSON (not UTF-8 text at {where})") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSONFile(
            f"{os.fspath(path)} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; "
            "a truncated or hand-edited file?)"
        ) from None
    except RecursionError:
        raise InvalidJSONFile(f"{os.fspath(path)} is not valid JSON (nested too deeply)") from None


def read_json_object(path: str | os.PathLike[str], missing: Any = REQUIRED) -> Any:
    """``read_json`` for a file that must hold a JSON object (``{...}``), e.g. a run's config.json.

    Raises:
        InvalidJSONFile: not valid JSON, or valid JSON that is not an object (the message
            says what it holds instead).
    """
    value = read_json(path, missing)
    if value is missing and missing is not REQUIRED:
        return value
    if not isinstance(value, dict):
        raise InvalidJSONFile(
            f"{os.fspath(path)} must hold a JSON object ({{...}}). Received: a JSON {_kind(value)}"
        )
    return value


def _kind(value: Any) -> str:
    """The JSON name of a parsed value's type: object, array, string, number, true/false, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)
