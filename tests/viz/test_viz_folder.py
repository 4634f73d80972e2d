"""Plots of a run on an image folder: class names are the folder names, colour filters."""

from __future__ import annotations

import numpy as np

from cnnlab.viz import images
from cnnlab.viz.report import write_report
from cnnlab.viz.run_plots import PLOT_FILES


def test_folder_run_uses_folder_names_and_colour(tmp_path):
    from PIL import Image

    from cnnlab.train.runs.config import TrainConfig
    from cnnlab.train.runs.run import train_run

    rng = np.random.default_rng(0)
    names = ["cat", "dog & <friends>"]  # escaped in the report
    for k, name in enumerate(names):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 80, size=(8, 8, 3)) + 150 * k * np.array([1, 0, 0])
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "data" / name / f"{i}.png")
    run = tmp_path / "run"
    config = TrainConfig(
        data=str(tmp_path / "data"), model="lenet5", epochs=1, batch_size=8, val_split=0.0, out=str(run)
    )
    train_run(config, verbose=False)
    report = write_report(run, tsne=False)
    text = report.read_text()
    assert "<td>cat</td>" in text and "<td>dog &amp; &lt;friends&gt;</td>" in text
    assert text.count("data:image/png") == 8  # every plot but t-SNE, Grad-CAM included
    assert (run / "plots" / PLOT_FILES["gradcam"]).exists()  # colour images, LeNet-5
    with Image.open(run / "plots" / PLOT_FILES["filters"]) as img:
        assert img.size == images.grid_size(6, images.FILTER_COLUMNS, images.FILTER_CELL)  # LeNet: 6
        rgb = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 50  # filters drawn in colour
