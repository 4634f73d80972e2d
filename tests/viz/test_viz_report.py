"""A real (tiny) training run: every plot, report.html in headless Chromium, the CLI commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from cnnlab.viz import cam_plots, confusion, curves, images, projection
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
    from cnnlab.train.runs.config import TrainConfig
    from cnnlab.train.runs.run import train_run

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
    check_png(plots / PLOT_FILES["gradcam"], cam_plots.cam_grid_size(min(wrong, 9)))
    assert sorted(p.name for p in written) == sorted(
        PLOT_FILES[k] for k in [*expected, "misclassified", "gradcam"]
    )


def test_report_is_self_contained(run_dir):
    run, _ = run_dir
    text = (run / "report.html").read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # no network
    assert text.count('src="data:image/png;base64,') == 8  # every plot but t-SNE
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


def test_report_gradcam_shows_the_predicted_and_true_class_maps(run_dir, monkeypatch):
    """The Grad-CAM section draws the most confident mistakes, with the maps of their
    predicted and of their true class at the default layer (the last conv/pool stage)."""
    from cnnlab.data import load_dataset
    from cnnlab.functional.activations import softmax
    from cnnlab.io import load_with_extra
    from cnnlab.viz import run_plots
    from cnnlab.viz.gradcam import grad_cam

    run, _ = run_dir
    model, extra = load_with_extra(run / "model.npz")
    test = load_dataset("digits").test
    x = run_plots._normalize(test.x, extra)
    probs = softmax(model.predict(x).astype(np.float64))
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != test.y)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:9]
    assert len(wrong) > 1  # one epoch on digits leaves mistakes to show
    drawn = {}
    monkeypatch.setattr(
        run_plots, "plot_cam_misclassified", lambda *args, **kw: drawn.update(args=args, kw=kw)
    )
    confidence = probs[np.arange(len(pred)), pred]
    classes = [str(c) for c in extra["classes"]]
    run_plots._gradcam_plot(model, test.x, x, test.y, pred, confidence, classes, run / "plots")
    imgs, y_true, y_pred, cam_pred, cam_true, drawn_classes, _ = drawn["args"]
    assert drawn_classes == classes
    np.testing.assert_array_equal(imgs, test.x[wrong])
    np.testing.assert_array_equal(y_true, test.y[wrong])
    np.testing.assert_array_equal(y_pred, pred[wrong])
    last_pool = 7  # the default model: (conv, BN, ReLU, pool) x 2, flatten, dense x 2
    assert type(model.layers[last_pool]).__name__ == "MaxPool2D" and model.layers[8].name == "Flatten"
    np.testing.assert_allclose(cam_pred, grad_cam(model, x[wrong], target=pred[wrong], layer=last_pool))
    np.testing.assert_allclose(cam_true, grad_cam(model, x[wrong], target=test.y[wrong], layer=last_pool))
    assert not np.allclose(cam_pred, cam_true)
    assert drawn["kw"]["layer"] == "7: MaxPool2D(2)"
    assert not (run / "tensorboard").exists()  # a run without --tensorboard writes no event files


def test_cli_show_cam(run_dir, tmp_path, capsys):
    from PIL import Image

    from cnnlab.cli.main import main
    from cnnlab.data import load_dataset

    run, _ = run_dir
    digit = load_dataset("digits").test.x[3, 0]
    Image.fromarray((digit * 255).astype(np.uint8)).save(tmp_path / "d.png")
    args = ["show", str(run), str(tmp_path / "d.png"), "--out", str(tmp_path)]
    assert main([*args, "--cam"]) == 0
    assert str(tmp_path / "d_gradcam.png") in capsys.readouterr().out
    # input, Grad-CAM of the top-2 classes, saliency: 4 panels
    check_png(tmp_path / "d_gradcam.png", (4 * cam_plots.CAM_CELL, cam_plots.CAM_CELL + 60))
    (tmp_path / "d_gradcam.png").unlink()
    assert main([*args, "--cam-layer", "0"]) == 0
    check_png(tmp_path / "d_gradcam.png", (4 * cam_plots.CAM_CELL, cam_plots.CAM_CELL + 60))
    assert main([*args, "--cam", "--cam-layer", "8"]) == 1  # Flatten: not a feature map
    err = capsys.readouterr().err
    assert "layer 8 (Flatten) must output a 4-D feature map" in err
    assert main([*args, "--cam", "--cam-layer", "99"]) == 1
    assert "argument `layer` must be an index into model.layers, from -12 to 11" in capsys.readouterr().err


def test_cli_plot_errors(tmp_path, capsys):
    from cnnlab.cli.main import main

    assert main(["plot", str(tmp_path / "nope")]) == 1
    assert "no run folder" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 1  # a folder, but not a run
    assert "is not a run folder" in capsys.readouterr().err
