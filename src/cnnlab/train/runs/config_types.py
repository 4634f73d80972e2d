"""Config values checked by type, with messages in JSON's words (they usually come from a file).

Example:
    >>> check_values({"epochs": "three"}, {"epochs": "int"}, "--config c.json")
    Traceback (most recent call last):
    ...
    ValueError: --config c.json: key `epochs` must be an int (a whole number). Received: "three" (a string)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: What each type is called in a message.
EXPECTED = {
    "int": "an int (a whole number)",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "str | None": "a string or null",
    "dict[str, Any]": "an object (key: value pairs)",
}


def json_type(value: Any) -> str:
    """What ``value`` is called in JSON: "a string", "a list", "null", ..."""
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), "a " + type(value).__name__)


def check_type(where: str, name: str, kind: str, value: Any) -> None:
    """Raise a ValueError naming key ``name`` if ``value`` is not of ``kind`` (a key of EXPECTED)."""
    ok = {
        "int": isinstance(value, (int, np.integer)) and not isinstance(value, bool),
        "float": isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, (bool, np.bool_)),
        "str | None": value is None or isinstance(value, str),
        "dict[str, Any]": isinstance(value, dict),
    }[kind]
    if not ok:
        raise ValueError(
            f"{where}: key `{name}` must be {EXPECTED[kind]}. Received: "
            + ("null" if value is None else f"{json.dumps(value, default=repr)} ({json_type(value)})")
        )


def check_values(values: Any, kinds: dict[str, str], where: str) -> None:
    """Refuse ``values`` if not a dict, with keys not in ``kinds``, or of the wrong type."""
    if not isinstance(values, dict):
        raise ValueError(
            f'{where}: must be a JSON object of config keys (e.g. {{"epochs": 3}}). '
            f"Received: {json_type(values)}"
        )
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}. Valid keys: {', '.join(sorted(kinds))}")
    for name, value in values.items():
        check_type(where, name, kinds[name], value)
