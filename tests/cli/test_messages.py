"""What the CLI prints besides results (issue 15, part 3): whole errors, one-line warnings, no
traceback on a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cli_run import cli_out as cli  # (exit status, stdout, stderr)
from cnnlab.cli.main import main

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def digits_model(tmp_path: Path) -> Path:
    """An untrained model for 8x8 digits with the run's extra (classes, input shape)."""
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 10, rng=0))
    extra = {"classes": [str(d) for d in range(10)], "input_shape": [1, 8, 8], "dataset": "digits"}
    return cnnlab.save(model, tmp_path / "model.npz", extra=extra)


def two_class_folder(root: Path, n: int = 6, size: int = 8) -> Path:
    for c, value in (("a", 40), ("b", 200)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("L", (size, size), value + i).save(root / c / f"{i}.png")
    return root


# ---- the whole message -------------------------------------------------------------------------
def test_missing_dataset_error_keeps_the_folders_and_the_advice(
    digits_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNLAB_MIRROR", (tmp_path / "no-mirror").as_uri())  # never the network
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    code, _, err = cli(capsys, "evaluate", str(digits_model), "--data", "mnist", "--data-dir", str(empty))
    lines = err.rstrip("\n").splitlines()
    assert code == 1
    assert lines[0].startswith("cnnlab evaluate: error: mnist: dataset files not found. Looked for ")
    assert f"    - {empty}  (root / --data-dir)" in lines
    assert f"    - {tmp_path / 'cache' / 'cnnlab' / 'mnist'}  (user cache, where downloads go)" in lines
    assert any(line.startswith("  The download from ") for line in lines)
    assert lines[-1].startswith("  To get them: try the download again")
    assert all(line.startswith("  ") for line in lines[1:])


def test_yaml_error_keeps_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yaml")
    bad = tmp_path / "arch.yaml"
    bad.write_text("layers:\n  - [Conv2D, {in_channels: 1\n")
    code, _, err = cli(capsys, "summary", str(bad))
    lines = err.splitlines()
    assert code == 1 and lines[0].startswith(
        f"cnnlab summary: error: model_from_file: '{bad}' is not valid YAML"
    )
    assert any("line 2, column 14" in line for line in lines[1:])
    assert all(line.startswith("  ") for line in lines[1:])


# ---- warnings become one-line notices ----------------------------------------------------------
def test_a_text_file_in_a_class_folder_is_one_warning_line(tmp_path: Path) -> None:
    folder = two_class_folder(tmp_path / "imgs")
    (folder / "a" / "notes.txt").write_text("not an image")
    (folder / "b" / "labels.csv").write_text("not an image either")
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 2, rng=0))
    path = cnnlab.save(model, tmp_path / "m.npz", extra={"classes": ["a", "b"], "input_shape": [1, 8, 8]})
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "evaluate", str(path), "--data", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"cnnlab evaluate: warning: folder dataset {folder}: skipping 2 files that are not .png/.jpg/.jpeg "
        "images (a/notes.txt, b/labels.csv)"
    ]


def test_pillows_decompression_bomb_warning_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, digits_model: Path
) -> None:
    image = tmp_path / "huge.png"
    Image.new("L", (12, 12)).save(image)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 144 pixels: over the limit, under twice it
    code, out, err = cli(capsys, "predict", str(digits_model), str(image))
    assert code == 0 and out.startswith(f"{image}: ")
    lines = err.splitlines()
    assert lines[0] == (
        f"cnnlab predict: warning: image {image} is very large (12x12 = 144 pixels, over Pillow's limit of "
        "100 against decompression bombs); reading it anyway"
    )
    assert "DecompressionBomb" not in err and "warn(" not in err


def test_cli_warnings_prints_each_warning_once_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from cnnlab.cli.notices import cli_warnings

    with cli_warnings("cnnlab train"):
        for _ in range(3):
            np.float32(3e38) * np.float32(10)  # NumPy's overflow RuntimeWarning
        warnings.warn("two\nlines", UserWarning, stacklevel=1)
        warnings.warn("hidden by default", DeprecationWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "cnnlab train: warning: overflow encountered in scalar multiply (RuntimeWarning)",
        "cnnlab train: warning: two lines",
    ]


# ---- a closed pipe -------------------------------------------------------------------------------
def test_closed_stdout_ends_quietly(digits_model: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` that has already exited
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cnnlab", "evaluate", str(digits_model), "--data", "digits"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141


def test_broken_pipe_in_process(
    digits_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["evaluate", str(digits_model), "--data", "digits"]) == 141
    assert capsys.readouterr().err == ""
