"""The rooms of docs/architecture.md import only the rooms below them."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

#: Core room -> the cnnlab rooms it may import (docs/architecture.md). Imports inside
#: functions count too: a lazy import is still a dependency.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "utils": set(),
    "atomic": set(),
    "npzfile": {"errors"},
    "init": {"errors", "utils"},
    "functional": {"errors", "utils"},
    "kernels": {"functional"},
    "data": {"errors", "init", "utils"},
    "layers": {"errors", "functional", "init", "kernels", "utils"},
    "losses": {"errors", "functional"},
    "optim": {"errors", "functional", "layers"},
    "models": {"errors", "init", "layers"},
    "io": {"atomic", "errors", "layers", "npzfile"},
    "gradcheck": {"errors", "init"},
}


def room_of(path: Path) -> str:
    first = path.relative_to(SRC).parts[0]
    return first.removesuffix(".py")


def cnnlab_imports(path: Path) -> set[str]:
    """The rooms ``path`` imports (``cnnlab.X...`` -> ``X``)."""
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        rooms |= {name.split(".")[1] for name in names if name.startswith("cnnlab.")}
        if isinstance(node, ast.ImportFrom) and node.module == "cnnlab":
            rooms |= {alias.name for alias in node.names}
    return rooms


def test_core_rooms_import_only_the_rooms_below_them() -> None:
    broken = []
    for path in sorted(SRC.rglob("*.py")):
        room = room_of(path)
        if room not in ALLOWED:
            continue
        extra = cnnlab_imports(path) - ALLOWED[room] - {room}
        if extra:
            broken.append(f"{path.relative_to(SRC)} imports {sorted(extra)}")
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_functional_and_data_import_nothing_from_layers() -> None:
    for room in ("functional", "data"):
        for path in (SRC / room).rglob("*.py"):
            assert "layers" not in cnnlab_imports(path), path


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cnnlab.layers.base import Layer\n    import cnnlab.io\n")
    assert cnnlab_imports(module) == {"layers", "io"}
