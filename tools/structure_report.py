"""Print the structure figures of the package: imports, cycles, long functions, size per room.

    python tools/structure_report.py

- internal imports at module level and inside functions (cnnlab's own modules only);
- import cycles between modules (strongly connected components of the import graph, every
  import counted, lazy ones too);
- the longest functions (lines from ``def`` to the last line of the body);
- lines of code per room (the first folder or module under ``src/cnnlab``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.Module) -> tuple[int, int, list[str]]:
    """(module-level count, function-level count, every imported cnnlab name) of a module."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    top = lazy = 0
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from cnnlab.x import y`: y may be a submodule (resolve() keeps the longest module)
            names = [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        names = [n for n in names if n.startswith("cnnlab.")]
        if not names:
            continue
        if id(node) in inside:
            lazy += 1
        else:
            top += 1
        imported += names
    return top, lazy, imported


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def resolve(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def main() -> int:
    paths = sorted(SRC.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph: dict[str, set[str]] = defaultdict(set)
    n_top = n_lazy = 0
    functions: list[tuple[int, str]] = []
    room_lines: dict[str, int] = defaultdict(int)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        me = module_name(path)
        top, lazy, imported = imports_of(tree)
        n_top += top
        n_lazy += lazy
        for name in imported:
            target = resolve(name, modules)
            # `import cnnlab.x.y` also runs the packages above it; only the leaf is an edge.
            if target and target != me and target != "cnnlab":
                graph[me].add(target)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                where = f"{path.relative_to(SRC)}:{node.name}"
                functions.append((node.end_lineno - node.lineno + 1, where))
        room = path.relative_to(SRC).parts[0].removesuffix(".py")
        room_lines[room] += len(text.splitlines())
    print(f"internal imports: {n_top} at module level, {n_lazy} inside functions")
    found = cycles(graph)
    print(f"import cycles between modules: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    rooms: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        for target in targets:
            if source == "cnnlab":  # the package's __init__: the public API, above every room
                continue
            a, b = source.split(".")[1], target.split(".")[1]
            if a != b:
                rooms[a].add(b)
    found = cycles(rooms)
    print(f"import cycles between rooms: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    print("longest functions:")
    for lines, where in sorted(functions, reverse=True)[:10]:
        print(f"  {lines:4d}  {where}")
    print("lines per room:")
    total = sum(room_lines.values())
    for room, lines in sorted(room_lines.items(), key=lambda item: -item[1]):
        print(f"  {lines:6d}  {100 * lines / total:4.1f}%  {room}")
    print(f"  {total:6d}  total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
