"""The rooms of docs/architecture.md import only the rooms below them, on the whole package.

A room is a top-level module or folder of ``src/cnnlab`` (``layers``, ``io``); ``train`` is
split into its folders (``train.loop``, ``train.runs`` ...). ``ALLOWED`` is the table of
docs/architecture.md, and the tests hold the code and the document to it:

- every room is in the table, and imports only the rooms the table allows it;
- the table is a layering (no two rooms may import each other, directly or round about);
- the document's table says exactly what ``ALLOWED`` says;
- imports of cnnlab's own modules sit at the top of the file; the one exception is listed
  in ``LAZY_IMPORTS`` with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnnlab"
DOC = ROOT / "docs" / "architecture.md"

#: ``train``'s folders, each a room of its own.
TRAIN_ROOMS = ("evaluation", "loop", "runs", "analysis")

BASE = {"errors", "utils"}
#: Room -> the cnnlab rooms it may import (docs/architecture.md), bottom to top. ``cnnlab``
#: is the package itself (its ``__init__``: the public API). Imports inside functions count
#: too: a lazy import is still a dependency.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "utils": set(),
    "atomic": set(),
    "jsonfile": set(),
    "process": set(),
    "npzfile": {"errors"},
    "init": BASE,
    "functional": BASE,
    "data": BASE | {"init"},
    "layers": BASE | {"init", "functional"},
    "losses": BASE | {"functional"},
    "optim": BASE | {"functional", "layers"},
    "models": BASE | {"init", "layers"},
    "io": BASE | {"atomic", "npzfile", "layers"},
    "gradcheck": BASE | {"init"},
    "interop": BASE | {"init", "functional", "layers", "losses", "optim", "models", "io"},
    "explain": BASE | {"init", "functional", "layers", "losses", "gradcheck"},
    "train.evaluation": BASE | {"functional", "data"},  # data: the dataset metadata (MIRROR_SAFE)
    "train.loop": BASE
    | {
        "atomic",
        "jsonfile",
        "npzfile",
        "process",
        "init",
        "functional",
        "data",
        "layers",
        "losses",
        "optim",
        "models",
        "io",
        "interop",
        "train.evaluation",
    },
    "train.runs": BASE
    | {
        "atomic",
        "jsonfile",
        "init",
        "functional",
        "data",
        "layers",
        "losses",
        "optim",
        "models",
        "io",
        "interop",
        "train.evaluation",
        "train.loop",
    },
    "train.analysis": BASE
    | {"jsonfile", "data", "optim", "models", "train.evaluation", "train.loop", "train.runs"},
    "train": set(),
    "viz": BASE
    | {
        "atomic",
        "explain",
        "jsonfile",
        "init",
        "functional",
        "data",
        "layers",
        "models",
        "io",
        "train.evaluation",
        "train.loop",
        "train.runs",
        "train.analysis",
    },
    "dashboard": BASE
    | {
        "explain",
        "jsonfile",
        "functional",
        "data",
        "optim",
        "models",
        "io",
        "train.evaluation",
        "train.loop",
        "train.runs",
        "viz",
    },
    "cnnlab": BASE | {"process", "gradcheck", "layers", "losses", "optim", "io", "interop", "train.loop"},
}
#: The command line sits on top: it may import every room but ``__main__``.
ALLOWED["cli"] = set(ALLOWED) - {"cli"}
ALLOWED["__main__"] = {"cli"}

#: (file, module) -> why a function imports a cnnlab module instead of the file's top.
LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("dashboard/server.py", "cnnlab.dashboard.app"): (
        "dashboard/app.py is built on Starlette (the optional `dashboard` extra); the server "
        "imports it after checking that starlette and uvicorn are installed, so `cnnlab --help` "
        "and `import cnnlab.dashboard` work without them"
    ),
}


def room_of_module(name: str) -> str:
    """``cnnlab.train.loop.fit`` -> ``train.loop``; ``cnnlab.io`` -> ``io``; ``cnnlab`` -> ``cnnlab``."""
    parts = name.split(".")[1:]
    if not parts or parts[0] == "__init__":
        return "cnnlab"
    if parts[0] == "train" and len(parts) > 1 and parts[1] in TRAIN_ROOMS:
        return f"train.{parts[1]}"
    return parts[0]


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(path: Path) -> str:
    return room_of_module(module_of(path))


def imported_modules(tree: ast.AST) -> list[tuple[str, bool]]:
    """``(cnnlab module, inside a function)`` for every import of a cnnlab module in ``tree``."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "cnnlab":  # from cnnlab import io, __version__
                names = [f"cnnlab.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(n, id(node) in inside) for n in names if n == "cnnlab" or n.startswith("cnnlab.")]
    return found


def cnnlab_imports(path: Path) -> set[str]:
    """The rooms ``path`` imports."""
    rooms = set()
    for name, _ in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
        room = room_of_module(name)
        # `from cnnlab import __version__`: a name of the package, not a room
        rooms.add(room if (SRC / room.split(".")[0]).exists() or room in ALLOWED else "cnnlab")
    return rooms


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_room_is_in_the_table() -> None:
    rooms = {room_of(path) for path in sources()}
    assert not rooms - set(ALLOWED), (
        f"rooms missing from ALLOWED and docs/architecture.md: {rooms - set(ALLOWED)}"
    )
    assert not set(ALLOWED) - rooms, f"rooms in ALLOWED that no longer exist: {set(ALLOWED) - rooms}"


def test_rooms_import_only_the_rooms_below_them() -> None:
    broken = []
    for path in sources():
        room = room_of(path)
        extra = cnnlab_imports(path) - ALLOWED[room] - {room}
        if extra:
            broken.append(f"{path.relative_to(SRC)} ({room}) imports {sorted(extra)}")
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_the_table_is_a_layering() -> None:
    """No room may import itself round about: the allowed imports form no cycle."""
    order: list[str] = []
    done: set[str] = set()

    def visit(room: str, path: tuple[str, ...]) -> None:
        assert room not in path, f"the rooms {' -> '.join((*path, room))} may import each other"
        if room in done:
            return
        for below in sorted(ALLOWED[room]):
            visit(below, (*path, room))
        done.add(room)
        order.append(room)

    for room in ALLOWED:
        visit(room, ())
    assert len(order) == len(ALLOWED)


def test_imports_of_cnnlab_modules_sit_at_the_top_of_the_file() -> None:
    lazy = []
    for path in sources():
        where = path.relative_to(SRC).as_posix()
        for name, inside in imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            if inside and (where, name) not in LAZY_IMPORTS:
                lazy.append(f"{where}: {name}")
    assert not lazy, (
        "imports of cnnlab modules inside functions (move them to the top of the file; only an "
        "optional third-party package is imported where it is used):\n" + "\n".join(lazy)
    )


def test_the_lazy_imports_allowed_still_exist() -> None:
    for (where, name), reason in LAZY_IMPORTS.items():
        tree = ast.parse((SRC / where).read_text(encoding="utf-8"))
        assert (name, True) in imported_modules(tree), f"{where} no longer imports {name} lazily: {reason}"


def test_functional_and_data_import_nothing_from_layers() -> None:
    for room in ("functional", "data"):
        for path in (SRC / room).rglob("*.py"):
            assert "layers" not in cnnlab_imports(path), path


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from cnnlab.layers.base import Layer\n    import cnnlab.train.loop.fit\n"
    )
    assert cnnlab_imports(module) == {"layers", "train.loop"}
    assert imported_modules(ast.parse(module.read_text())) == [
        ("cnnlab.layers.base", True),
        ("cnnlab.train.loop.fit", True),
    ]


def test_the_checker_names_rooms() -> None:
    assert room_of_module("cnnlab.train.runs.config") == "train.runs"
    assert room_of_module("cnnlab.train") == "train"
    assert room_of_module("cnnlab") == "cnnlab"
    assert room_of(SRC / "__init__.py") == "cnnlab"
    assert room_of(SRC / "train" / "analysis" / "advice.py") == "train.analysis"


# ---- docs/architecture.md says what ALLOWED says ------------------------------------------
def doc_table() -> dict[str, set[str]]:
    """Room -> allowed rooms, from the table of docs/architecture.md.

    A row names its rooms in backticks in the first column (``train/loop/``, ``io.py``) and
    the rooms they may import in backticks in the last (``nothing``: none; ``every room``:
    all but ``__main__``).
    """
    table: dict[str, set[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        rooms = [_room_name(r) for r in re.findall(r"`([^`]+)`", cells[0])]
        last = cells[-1]
        allowed = {_room_name(r) for r in re.findall(r"`([^`]+)`", last)}
        if last == "every room":
            allowed = set(ALLOWED) - {"__main__"}
        for room in rooms:
            table[room] = allowed - {room}
    return table


def _room_name(text: str) -> str:
    """``train/loop/`` -> ``train.loop``; ``io.py`` -> ``io``; ``cnnlab/__init__.py`` -> ``cnnlab``."""
    text = text.removesuffix("/").removesuffix(".py").removesuffix("/__init__")
    return text.replace("/", ".")


def test_the_document_draws_every_room_with_its_imports() -> None:
    drawn = doc_table()
    assert set(drawn) == set(ALLOWED), (
        f"rooms not drawn in docs/architecture.md: {sorted(set(ALLOWED) - set(drawn))}; "
        f"drawn but not in ALLOWED: {sorted(set(drawn) - set(ALLOWED))}"
    )
    differ = [
        f"{room}: the document says {sorted(drawn[room])}, ALLOWED says {sorted(ALLOWED[room] - {room})}"
        for room in ALLOWED
        if drawn[room] != ALLOWED[room] - {room}
    ]
    assert not differ, "\n".join(differ)


@pytest.mark.parametrize(("text", "room"), [("train/loop/", "train.loop"), ("io.py", "io"), ("cli/", "cli")])
def test_room_names_of_the_document(text: str, room: str) -> None:
    assert _room_name(text) == room
