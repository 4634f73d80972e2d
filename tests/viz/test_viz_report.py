"""A real (tiny) training run: every plot, report.html in headless Chromium, the CLI commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from cnnlab.viz import confusion, curves, images, projection
from cnnlab.viz.report import PLOT_SECTIONS, write_report
from cnnlab.viz.run_plots import PLOT_FILES, plot_run

HEADINGS = ["Configuration", "Model", "Metrics", "Diagnosis", *(h for h, _ in PLOT_SECTIONS)]


def check_png(path, size):
    from PIL import Image

    assert path.exists(), path
    with Image.open(path) as img:
        assert img.size == tuple(size), path.name
        assert np.asarray(img.convert("RGB"), dtype=np.float64).std() > 5.0, path.name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One epoch of `small` on digits, its plots (no t-SNE: slow) and report.html."""
    from cnnlab.train.run import TrainConfig, train_run

    out = tmp_path_factory.mktemp("run")
    train_run(TrainConfig(epochs=1, batch_size=64, out=str(out)), verbose=False)
    written = plot_run(out, tsne=False)
    write_report(out, make_plots=False)
    return out, written


def test_plot_run_writes_every_plot(run_dir):
    run, written = run_dir
    plots = run / "plots"
    expected = {
        "curves": curves.SIZE,
        "confusion": confusion.CONFUSION_SIZE,
        "per_class": confusion.PER_CLASS_SIZE,
        "filters": images.grid_size(32, images.FILTER_COLUMNS, images.FILTER_CELL),  # Conv2D(1, 32)
        "feature_maps": images.feature_maps_size(4),  # conv, pool, conv, pool
        "pca": projection.SIZE,
    }
    for key, size in expected.items():
        check_png(plots / PLOT_FILES[key], size)
    wrong = int(
        np.sum(
            np.array(json.loads((run / "metrics.json").read_text())["confusion_matrix"]) * (1 - np.eye(10))
        )
    )
    check_png(
        plots / PLOT_FILES["misclassified"],
        images.grid_size(min(wrong, 32), images.MISCLASSIFIED_COLUMNS, images.MISCLASSIFIED_CELL),
    )
    assert sorted(p.name for p in written) == sorted(PLOT_FILES[k] for k in [*expected, "misclassified"])


def test_report_is_self_contained(run_dir):
    run, _ = run_dir
    text = (run / "report.html").read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # no network
    assert text.count('src="data:image/png;base64,') == 7  # every plot but t-SNE
    assert "floor((8 - 3 + 2*1) / 1) + 1 = 8" in text  # the model summary's size formula
    assert "verdict:" in text
    assert "<td>9</td>" in text  # digits' class names in the per-class table


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (CI installs it: apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from PIL import Image

    run, _ = run_dir
    url = (run / "report.html").resolve().as_uri()
    base = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            *base,
            f"--user-data-dir={tmp_path / 'profile1'}",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as img:
        assert img.size == (1200, 3000)
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert pixels.std() > 20.0  # text, tables and plots, not a blank page
    dom = subprocess.run(
        [*base, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rendered = re.findall(r"<h2>(.*?)</h2>", dom)
    assert rendered == HEADINGS


def test_report_of_a_partial_run_escapes_text(tmp_path):
    """A run that stopped before testing: curves only; text from files is escaped."""
    from cnnlab.cli.main import main

    (tmp_path / "config.json").write_text(json.dumps({"data": "<script>alert(1)</script>", "epochs": 2}))
    (tmp_path / "history.csv").write_text(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n"
        "1,1.5,0.5,1.4,0.55,0.01,1.0\n2,1.0,0.7,1.1,0.65,0.01,1.0\n"
    )
    assert main(["plot", str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert text.count("data:image/png") == 1
    assert "no metrics.json" in text
    check_png(tmp_path / "plots" / PLOT_FILES["curves"], curves.SIZE)


def test_cli_plot_activations_and_show(run_dir, tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli.main import main
    from cnnlab.data import load_dataset

    assert main(["plot", "activations", "--out", str(tmp_path)]) == 0
    check_png(tmp_path / "activations.png", (1200, 750))
    run, _ = run_dir
    digit = load_dataset("digits").test.x[0, 0]  # (8, 8) in [0, 1]
    Image.fromarray((digit * 255).astype(np.uint8)).resize((32, 32)).save(tmp_path / "digit.png")
    assert main(["show", str(run), str(tmp_path / "digit.png"), "--out", str(tmp_path), "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"digit\.png: \d 0\.\d{3}, \d 0\.\d{3}, \d 0\.\d{3}", printed)
    check_png(tmp_path / "digit_feature_maps.png", images.feature_maps_size(4))
    check_png(tmp_path / "digit_prediction.png", (900, 400))


def test_cli_plot_errors(tmp_path, capsys):
    from cnnlab.cli.main import main

    assert main(["plot", str(tmp_path / "nope")]) == 1
    assert "no run folder" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 1  # a folder, but not a run
    assert "is not a run folder" in capsys.readouterr().err
