"""The torch backend (cnnlab train --backend torch) against the NumPy engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.data.loader import DataLoader
from cnnlab.data.transforms import parse_augment
from cnnlab.errors import CnnlabError
from cnnlab.io import load
from cnnlab.losses import MSELoss, SoftmaxCrossEntropy
from cnnlab.models import build_model
from cnnlab.optim import make_optimizer
from cnnlab.optim.schedules import CosineWarmup
from cnnlab.train.loop.callbacks import EarlyStopping
from cnnlab.train.loop.engines.numpy_engine import validate
from cnnlab.train.loop.engines.torch_engine import (
    resolve_device,
    to_tensors,
    torch_optimizer,
    train_step,
    validate_torch,
)
from cnnlab.train.loop.fit import fit
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.run import train_run


def fit_torch(*args: Any, **kwargs: Any) -> Any:
    """``fit`` with the PyTorch engine (``cnnlab train --backend torch``)."""
    return fit(*args, backend="torch", **kwargs)


TINY = {
    "layers": [
        {"Conv2D": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        "ReLU",
        {"MaxPool2D": {"kernel_size": 2}},
        "Flatten",
        {"Dense": {"out_features": "num_classes"}},
    ]
}


def _data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return gen.normal(size=(n, 1, 8, 8)), gen.integers(0, 10, size=n)


def _tiny_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("sgd", {"momentum": 0.9, "weight_decay": 1e-3}), ("adam", {"weight_decay": 1e-3}), ("adamw", {})],
)
def test_first_three_step_losses_match_the_numpy_engine_in_float64(torch, name, kwargs):
    from cnnlab.interop.torch import to_torch

    model = build_model("small_bn", in_channels=1, input_size=8, num_classes=10, rng=0).astype(np.float64)
    module = to_torch(model)  # the same initial weights
    optimizer = make_optimizer(name, model.parameters(), lr=0.01, **kwargs)
    torch_opt = torch_optimizer(optimizer, module)
    loss = SoftmaxCrossEntropy()
    x, y = _data()
    for xb, yb in list(DataLoader(x, y, 32, rng=0)):
        expected = loss.forward(model.forward(xb), yb)
        model.backward(loss.backward())
        optimizer.step()
        stats = train_step(module, torch_opt, *to_tensors(xb, yb, np.float64, "cpu"))
        assert abs(stats[0].item() / len(xb) - expected) < 1e-6
    got = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-9)


def test_fit_torch_repeats_fit_epoch_by_epoch(torch):
    """Same split, shuffling, augmentation, schedule and callbacks: the same History."""
    x, y = _data(120)

    def run(train):
        model = build_model("small", in_channels=1, input_size=8, num_classes=10, rng=1).astype(np.float64)
        optimizer = make_optimizer("sgd", model.parameters(), lr=0.05)
        schedule = CosineWarmup(optimizer, total_epochs=3, warmup_epochs=1)
        stopper = EarlyStopping(patience=5)
        history = train(
            model,
            SoftmaxCrossEntropy(),
            optimizer,
            (x, y),
            val_split=0.2,
            epochs=3,
            batch_size=16,
            seed=3,
            schedule=schedule,
            transform=parse_augment("shift,noise", (1, 8, 8)),
            callbacks=[stopper],
            verbose=False,
        )
        return model, optimizer, history

    model_np, opt_np, history_np = run(fit)
    model_pt, opt_pt, history_pt = run(fit_torch)
    for row_np, row_pt in zip(history_np.rows, history_pt.rows, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            assert row_pt[key] == pytest.approx(row_np[key], abs=1e-9), key
    for key, value in model_np.state_dict().items():
        np.testing.assert_allclose(model_pt.state_dict()[key], value, atol=1e-9)
    assert opt_pt.t == opt_np.t  # the optimizer state came back too
    for path, state in opt_np.state.items():
        np.testing.assert_allclose(opt_pt.state[path]["momentum_buffer"], state["momentum_buffer"], atol=1e-9)


def test_copied_back_model_evaluates_like_the_torch_module(torch):
    from cnnlab.interop.torch import to_torch

    x, y = _data(80)
    x_val, y_val = _data(40, seed=1)
    model = build_model("small_bn", in_channels=1, input_size=8, num_classes=10, rng=0)
    optimizer = make_optimizer("adam", model.parameters(), lr=0.01)
    history = fit_torch(
        model,
        SoftmaxCrossEntropy(),
        optimizer,
        (x.astype(np.float32), y),
        val_data=(x_val.astype(np.float32), y_val),
        epochs=1,
        batch_size=16,
        verbose=False,
    )
    val_loss, val_acc = validate(model, SoftmaxCrossEntropy(), x_val.astype(np.float32), y_val, 16)
    assert val_loss == pytest.approx(history.last["val_loss"], rel=1e-5)
    assert val_acc == history.last["val_accuracy"]
    assert validate_torch(to_torch(model), x_val, y_val, 16)[0] == pytest.approx(val_loss, rel=1e-5)


def test_train_run_with_the_torch_backend_writes_a_run_folder_cnnlab_loads(torch, tmp_path):
    from cnnlab.interop.torch import to_torch

    config = TrainConfig(model=_tiny_file(tmp_path), epochs=1, backend="torch", out=str(tmp_path / "run"))
    result = train_run(config, verbose=False)
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "model.npz", "history.csv", "metrics.json"} <= names
    assert json.loads((result.run_dir / "config.json").read_text())["backend"] == "torch"
    model = load(result.run_dir / "model.npz")
    from cnnlab.data import load_dataset
    from cnnlab.data.loader import Normalizer

    splits = load_dataset("digits")
    norm = Normalizer().fit(splits.train.x)
    x_test = norm(splits.test.x)
    loss, acc = validate_torch(to_torch(model), x_test, splits.test.y)
    assert acc == pytest.approx(result.test_accuracy, abs=1e-12)
    assert loss == pytest.approx(result.test_loss, rel=1e-5)


def test_a_numpy_trained_model_runs_the_same_in_torch(torch, tmp_path):
    from cnnlab.interop.torch import to_torch

    config = TrainConfig(model=_tiny_file(tmp_path), epochs=1, out=str(tmp_path / "run"))
    model = load(train_run(config, verbose=False).run_dir / "model.npz").eval()
    x = np.random.default_rng(0).normal(size=(16, 1, 8, 8)).astype(np.float32)
    expected = model.forward(x)
    got = to_torch(model)(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_resume_continues_a_torch_run_bit_for_bit(torch, tmp_path):
    from cnnlab.train.loop.callbacks import Callback
    from cnnlab.train.loop.checkpoint import TrainingInterrupted

    class StopAtEpoch2(Callback):
        def on_epoch_begin(self, epoch, ctx):
            if epoch == 2:
                raise KeyboardInterrupt

    tiny = _tiny_file(tmp_path)
    whole = TrainConfig(model=tiny, epochs=2, backend="torch", out=str(tmp_path / "whole"))
    train_run(whole, verbose=False)
    parts = TrainConfig(model=tiny, epochs=2, backend="torch", out=str(tmp_path / "parts"))
    with pytest.raises(TrainingInterrupted):
        train_run(parts, verbose=False, callbacks=[StopAtEpoch2()])
    train_run(parts, verbose=False, resume=True)
    a, b = load(tmp_path / "whole" / "model.npz"), load(tmp_path / "parts" / "model.npz")
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)


def test_cli_trains_with_the_torch_backend(torch, tmp_path, capsys):
    from cnnlab.cli.main import main

    out = tmp_path / "run"
    args = ["train", "--backend", "torch", "--model", _tiny_file(tmp_path), "--epochs", "1"]
    assert main([*args, "--quiet", "--no-plots", "--out", str(out)]) == 0
    assert "backend=torch" in capsys.readouterr().out
    assert (out / "model.npz").is_file()


def test_errors_name_the_problem(torch, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="backend"):
        TrainConfig(backend="jax").validate()
    with pytest.raises(ValueError, match="cuda with --backend torch"):
        TrainConfig(device="cuda").validate()
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(CnnlabError, match="PyTorch sees no CUDA GPU"):
            resolve_device("cuda")
    model = build_model("small", in_channels=1, input_size=8, num_classes=10, rng=0)
    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1)
    with pytest.raises(CnnlabError, match="only SoftmaxCrossEntropy"):
        fit_torch(model, MSELoss(), optimizer, _data(), epochs=1, verbose=False)
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun would set it; fails before joining
    with pytest.raises(CnnlabError, match=r"must be divisible by 3\. Received: batch_size=32"):
        fit_torch(model, SoftmaxCrossEntropy(), optimizer, _data(), epochs=1, batch_size=32, verbose=False)


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[torch\]' \(or pip install torch\)"):
        resolve_device("cpu")


def test_resume_with_early_stopping_matches_an_uninterrupted_torch_run(torch, tmp_path):
    """Issue 16's acceptance: the torch backend saves and restores callback state, so a
    resumed run with early stopping and the plateau schedule stops at the same epoch with
    the same best weights."""
    from cnnlab.train.loop.callbacks import Callback
    from cnnlab.train.loop.checkpoint import TrainingInterrupted

    class StopAtEpoch(Callback):
        def on_epoch_begin(self, epoch, ctx):
            if epoch == 6:
                raise KeyboardInterrupt

    tiny = str(Path(__file__).parents[1] / "reliability" / "tiny.json")
    options = dict(model=tiny, epochs=12, batch_size=32, lr=0.1, augment="shift", schedule="plateau",
                   early_stopping=4, seed=3, backend="torch")  # fmt: skip
    whole = train_run(TrainConfig(**options, out=str(tmp_path / "whole")), verbose=False)
    assert 5 < len(whole.history) < 12  # early stopping acted after the interruption point
    parts = TrainConfig(**options, out=str(tmp_path / "parts"))
    with pytest.raises(TrainingInterrupted):
        train_run(parts, verbose=False, callbacks=[StopAtEpoch()])
    resumed = train_run(parts, verbose=False, resume=True)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in whole.history.rows]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history.rows] == strip
    a, b = load(tmp_path / "whole" / "model.npz"), load(tmp_path / "parts" / "model.npz")
    for key, value in a.state_dict().items():
        assert b.state_dict()[key].tobytes() == value.tobytes(), key
