"""The TensorBoard callback, read back with TensorBoard's own event reader (EventAccumulator)."""

from __future__ import annotations

import functools
import io
import json
import os
import sys

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.train.loop.tensorboard import TensorBoard, tile_grid


@pytest.fixture(scope="module")
def accumulator():
    """TensorBoard's EventAccumulator; `tensorboard` is in the test extra, so CI never skips."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tensorboard is in the test extra and must be installed in CI")
        pytest.skip("tensorboard not installed (pip install tensorboard)")

    def read(path):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
        acc.Reload()
        return acc

    return read


def tiny_net(rng=0):
    return cnnlab.Sequential(
        cnnlab.Conv2D(1, 4, 3, padding=1, rng=rng),
        cnnlab.BatchNorm2D(4),
        cnnlab.ReLU(),
        cnnlab.MaxPool2D(2),
        cnnlab.Flatten(),
        cnnlab.Dense(4 * 4 * 4, 3, rng=rng),
    )


def tiny_data(n=30):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32) + y[:, None, None, None]
    return x, y


def train(tmp_path, epochs=3, val_split=0.2, fit_fn=None, **kwargs):
    net = tiny_net()
    x, y = tiny_data()
    cb = TensorBoard(tmp_path / "tb", sample=x[0], **kwargs)
    fit_fn = fit_fn or cnnlab.fit
    history = fit_fn(
        net,
        cnnlab.SoftmaxCrossEntropy(),
        cnnlab.Adam(net.parameters(), lr=0.01),
        (x, y),
        epochs=epochs,
        batch_size=8,
        val_split=val_split,
        callbacks=[cb],
        verbose=False,
    )
    return net, history, x


def png(image_event):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)))


def test_scalars_are_the_history(tmp_path, accumulator):
    _, history, _ = train(tmp_path)
    tr, va = accumulator(tmp_path / "tb" / "train"), accumulator(tmp_path / "tb" / "validation")
    assert set(tr.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy", "learning_rate", "images_per_second"}
    assert set(va.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy"}
    for acc, split in ((tr, "train"), (va, "val")):
        for tag, column in (("epoch_loss", f"{split}_loss"), ("epoch_accuracy", f"{split}_accuracy")):
            events = acc.Scalars(tag)
            assert [e.step for e in events] == [1, 2, 3]
            np.testing.assert_allclose([e.value for e in events], history.column(column), rtol=1e-6)
    np.testing.assert_allclose(
        [e.value for e in tr.Scalars("learning_rate")], history.column("lr"), rtol=1e-6
    )
    assert all(e.value > 0 for e in tr.Scalars("images_per_second"))


def test_histograms_of_the_weights_and_the_last_batch_gradients(tmp_path, accumulator):
    net, _, _ = train(tmp_path)
    tr = accumulator(tmp_path / "tb" / "train")
    names = [p.path for p in net.parameters()]
    assert sorted(tr.Tags()["histograms"]) == sorted(
        [f"weights/{n}" for n in names] + [f"gradients/{n}" for n in names]
    )
    for param in net.parameters():
        for tag, values in ((f"weights/{param.path}", param.value), (f"gradients/{param.path}", param.grad)):
            events = tr.Histograms(tag)
            assert [e.step for e in events] == [1, 2, 3]
            h = events[-1].histogram_value  # the last epoch: the model as fit() leaves it
            v = values.astype(np.float64).ravel()
            assert h.num == v.size
            np.testing.assert_allclose(
                [h.min, h.max, h.sum, h.sum_squares],
                [v.min(), v.max(), v.sum(), v @ v],
                rtol=1e-6,
                atol=1e-12,
            )
            assert sum(h.bucket) == v.size
    # Weights change between epochs (a histogram per epoch, not one repeated).
    sums = [e.histogram_value.sum for e in tr.Histograms("weights/0.weight")]
    assert len(set(sums)) == 3


def test_images_filters_and_feature_maps(tmp_path, accumulator):
    net, _, x = train(tmp_path, epochs=2)
    tr = accumulator(tmp_path / "tb" / "train")
    assert sorted(tr.Tags()["images"]) == ["feature_maps/0_Conv2D", "feature_maps/3_MaxPool2D", "filters"]
    filters = tr.Images("filters")
    assert [e.step for e in filters] == [1, 2]
    np.testing.assert_array_equal(png(filters[-1]), tile_grid(net.layers[0].params["weight"][:, :1]))
    from cnnlab.models.probe import feature_maps

    maps = dict(feature_maps(net, x[:1]))
    np.testing.assert_array_equal(
        png(tr.Images("feature_maps/3_MaxPool2D")[-1]), tile_grid(maps["3: MaxPool2D(2)"][0, :, None])
    )
    assert png(tr.Images("feature_maps/0_Conv2D")[-1]).shape == tile_grid(np.zeros((4, 1, 8, 8))).shape


def test_without_validation_no_nan_points(tmp_path, accumulator):
    train(tmp_path, epochs=2, val_split=0.0, histograms=False, images=False)
    tr = accumulator(tmp_path / "tb" / "train")
    assert tr.Tags()["histograms"] == [] and tr.Tags()["images"] == []
    assert (
        not (tmp_path / "tb" / "validation").exists()
        or accumulator(tmp_path / "tb" / "validation").Tags()["scalars"] == []
    )
    assert all(np.isfinite(e.value) for e in tr.Scalars("epoch_loss"))


def test_torch_backend_logs_weights_but_no_gradients(torch, tmp_path, accumulator):
    """fit_torch keeps the gradients in the torch module: only weight histograms."""
    net, _, _ = train(tmp_path, epochs=2, fit_fn=functools.partial(cnnlab.fit, backend="torch"))
    tr = accumulator(tmp_path / "tb" / "train")
    names = [p.path for p in net.parameters()]
    assert sorted(tr.Tags()["histograms"]) == sorted(f"weights/{n}" for n in names)
    h = tr.Histograms("weights/5.weight")[-1].histogram_value
    assert h.sum == pytest.approx(float(net.layers[5].params["weight"].astype(np.float64).sum()), rel=1e-6)
    assert set(tr.Tags()["scalars"]) >= {"epoch_loss", "images_per_second"}


def test_missing_tensorboard_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard.summary.writer.event_file_writer", None)
    with pytest.raises(CnnlabError, match=r'pip install "cnnlab\[tensorboard\]"'):
        TensorBoard(tmp_path)


def test_cli_train_tensorboard(tmp_path, accumulator, capsys):
    from cnnlab.cli.main import main

    run = tmp_path / "run"
    args = ["train", "--epochs", "1", "--batch-size", "64", "--quiet", "--no-plots", "--out", str(run)]
    assert main([*args, "--tensorboard"]) == 0
    assert json.loads((run / "config.json").read_text())["tensorboard"] is True
    tr = accumulator(run / "tensorboard" / "train")
    assert [e.step for e in tr.Scalars("epoch_loss")] == [1]
    assert "gradients/0.weight" in tr.Tags()["histograms"]
    assert "feature_maps/0_Conv2D" in tr.Tags()["images"]
    assert accumulator(run / "tensorboard" / "validation").Scalars("epoch_accuracy")
