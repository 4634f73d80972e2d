"""The tutorial's python blocks run, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def test_tutorial_code_blocks_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    assert len(blocks) >= 10
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{TUTORIAL.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message says which block
            raise AssertionError(f"tutorial block {i} failed: {exc!r}\n{block}") from exc


def test_readme_example_runs(capsys) -> None:
    readme = (TUTORIAL.parents[1] / "README.md").read_text()
    engine_part = readme.split("## Moving to PyTorch")[0]  # later blocks need torch and files
    blocks = re.findall(r"```python\n(.*?)```", engine_part, flags=re.S)
    assert blocks, "README lost its example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    loss = float(capsys.readouterr().out.split()[-1])
    assert 0 < loss < 10
