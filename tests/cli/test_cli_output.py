"""What the CLI prints (issue 23, items 20 and 21): a labelled confusion matrix, a summary of
a 1000-class one (the full matrix stays in --json), help without reST markup, --version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cli_run import cli_out as cli  # (exit status, stdout, stderr)
from cnnlab.cli import evaluate_cmd, train_cmd
from cnnlab.cli.main import build_parser
from cnnlab.data.datasets import ArrayDataset

SRC = str(Path(__file__).resolve().parents[2] / "src")


def saved_model(folder: Path, classes: list[str]) -> Path:
    """A linear model on 1x4x4 inputs with one output per class, saved as cnnlab.save does."""
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(16, len(classes), rng=0))
    path = folder / "model.npz"
    cnnlab.save(model, path, extra={"classes": classes, "input_shape": [1, 4, 4], "dataset": "synthetic"})
    return path


def fake_test_split(monkeypatch: pytest.MonkeyPatch, classes: list[str], per_class: int) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(len(classes)), per_class)  # (N,)
    x = rng.standard_normal((len(y), 1, 4, 4)).astype(np.float32)  # (N, 1, 4, 4)
    test = ArrayDataset(x, y, classes, name="synthetic/test")
    monkeypatch.setattr(evaluate_cmd, "load_test_split", lambda name, data_dir, shape: test)


def test_evaluate_of_1000_classes_prints_a_summary_and_json_keeps_the_full_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = [f"n{i:08d}" for i in range(1000)]
    model = saved_model(tmp_path, classes)
    fake_test_split(monkeypatch, classes, per_class=3)
    code, out, err = cli(capsys, "evaluate", str(model))
    assert code == 0, err
    assert len(out.encode()) < 50_000, len(out)  # was 6 MB: a row of 1000 counts per class
    assert "top 20 confusions (true -> predicted: count, share of the true class):" in out
    assert "per-class accuracy over 1000 classes: mean" in out
    assert "full confusion matrix with --json" in out
    code, out, err = cli(capsys, "evaluate", str(model), "--json")
    assert code == 0, err
    metrics = json.loads(out)
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (1000, 1000) and cm.sum() == 3000 and len(metrics["per_class"]) == 1000


def test_evaluate_prints_the_confusion_matrix_with_column_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = ["T-shirt/top", "Trouser", "Bag"]
    model = saved_model(tmp_path, classes)
    fake_test_split(monkeypatch, classes, per_class=4)
    code, out, err = cli(capsys, "evaluate", str(model))
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("confusion matrix (rows: true, columns: predicted):")
    head, rows = lines[at + 1], lines[at + 2 : at + 5]
    assert head.split() == ["T-shirt/", "Trouser", "Bag"]  # names cut to the column width
    assert [r.split()[0] for r in rows] == ["T-shirt/top", "Trouser", "Bag"]
    assert all(len(r) == len(head) for r in rows)  # the labels sit over their columns
    assert sum(int(v) for r in rows for v in r.split()[1:]) == 12


def _all_parsers() -> list[tuple[str, str]]:
    parser = build_parser()
    out = [("cnnlab", parser.format_help())]
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            out += [(name, p.format_help()) for name, p in action.choices.items()]
    return out


def test_help_texts_show_no_rest_markup() -> None:
    texts = _all_parsers()
    assert len(texts) > 10
    for name, text in texts:
        assert "``" not in text, (name, re.findall(r".{0,30}``.{0,30}", text))
        assert not re.search(r":(func|class|mod|meth|attr):`", text), name
    train = dict(texts)["train"]
    assert "``" not in train and "cnnlab train" in train


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"cnnlab {cnnlab.__version__}"
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'\nversion = "{cnnlab.__version__}"\n' in pyproject  # one version, not two
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "--version"],
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout == f"cnnlab {cnnlab.__version__}\n", proc.stderr


def test_ctrl_c_while_the_report_is_written_says_the_run_is_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cmd, "write_report", interrupted)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--epochs", "1", "--out", str(out))
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        f"cnnlab train: interrupted while writing the report; the trained run is saved in {out}. "
        f"Write the report with: cnnlab plot {out}"
    )
    assert (out / "model.npz").is_file() and (out / "metrics.json").is_file()
    monkeypatch.undo()
    assert not (out / "report.html").exists()
    code, _, err = cli(capsys, "plot", str(out))  # the command the message names writes it
    assert code == 0, err
    assert (out / "report.html").is_file()
