"""Exports never leave a half-written file in place of a good one (issue 23 item 1).

A full disk during ``cnnlab export`` used to leave a truncated model.pt / model.onnx where a
good one had been; now each file is written beside its target and renamed over it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from cnnlab.cli.export_cmd import export_torch
from cnnlab.errors import CnnlabError
from cnnlab.interop.onnx import to_onnx
from cnnlab.models import build_model


def model() -> Any:
    return build_model("small", input_size=(8, 8), num_classes=10, rng=0)


def test_a_failed_torch_export_keeps_the_old_files(
    torch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "torch"
    export_torch(model(), out)
    before = {name: (out / name).read_bytes() for name in ("model.pt", "model.py")}

    def full_disk(obj: Any, f: Any) -> None:
        f.write(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left on device") as info:
        export_torch(model(), out)
    assert info.value.filename == str(out / "model.pt")
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "model.py"]  # no temp file left


def test_a_failed_onnx_export_keeps_the_old_file(
    torch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx")
    path = tmp_path / "model.onnx"
    to_onnx(model(), path, input_shape=(1, 8, 8), dynamo=False)
    before = path.read_bytes()

    def full_disk(module: Any, args: Any, f: str, **kwargs: Any) -> None:
        Path(f).write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", full_disk)
    with pytest.raises(CnnlabError, match=f"to_onnx: cannot write {path}: No space left on device"):
        to_onnx(model(), path, input_shape=(1, 8, 8), dynamo=False)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
