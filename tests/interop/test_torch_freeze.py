"""--freeze on the torch backend: the same fine-tuning as the NumPy engine (float64 parity)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_run import exit_status
from cnnlab.errors import CnnlabError
from cnnlab.interop.torch import to_torch
from cnnlab.io import load, save
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models import build_model
from cnnlab.optim import make_optimizer
from cnnlab.train.loop.engines.torch_engine import freeze_like
from cnnlab.train.loop.fit import fit
from cnnlab.train.runs.finetune import ALL_BUT_HEAD, freeze_upto


def chain() -> Sequential:
    """conv-BN-ReLU-pool, Dropout, conv-ReLU-pool, Dense on 1x8x8; freezing 0-4 freezes BN and Dropout."""
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=0),
        BatchNorm2D(4),
        ReLU(),
        MaxPool2D(2),  # (4, 4, 4)
        Dropout(0.5),
        Conv2D(4, 6, 3, padding=1, rng=1),
        ReLU(),
        MaxPool2D(2),  # (6, 2, 2)
        Flatten(),
        Dense(24, 3, rng=2),
    )


def branches() -> Graph:
    """A stem, two branches concatenated, a head: freezing ``left`` freezes the stem too."""
    g = Graph("x")
    g.add("stem", Conv2D(1, 4, 3, padding=1, rng=0), "x")
    g.add("bn", BatchNorm2D(4), "stem")
    g.add("left", Conv2D(4, 2, 1, rng=1), "bn")
    g.add("right", Conv2D(4, 3, 3, padding=1, rng=2), "bn")
    g.add("cat", Concat(), ["left", "right"])
    g.add("flat", Flatten(), "cat")
    g.output(g.add("fc", Dense(5 * 8 * 8, 3, rng=3), "flat"))
    return g


def fine_tune(make: Any, upto: str, backend: str, optimizer: str) -> tuple[dict[str, np.ndarray], Any]:
    """``make()`` in float64 with BatchNorm statistics set, frozen up to ``upto``, fit 2 epochs."""
    model = make().astype(np.float64)
    for _, layer in model.named_layers():
        if isinstance(layer, BatchNorm2D):
            layer.buffers["running_mean"][:] = [0.1, -0.2, 0.3, 0.0]
            layer.buffers["running_var"][:] = [1.5, 0.5, 2.0, 1.0]
    freeze_upto(model, upto)
    gen = np.random.default_rng(0)
    x, y = gen.normal(size=(48, 1, 8, 8)), gen.integers(0, 3, size=48)
    opt = make_optimizer(optimizer, model.parameters(), lr=0.05)
    fit(model, SoftmaxCrossEntropy(), opt, (x, y), val_split=0.25, epochs=2, batch_size=12, seed=1,
        backend=backend, verbose=False)  # fmt: skip
    return model.state_dict(), opt


@pytest.mark.parametrize(
    ("make", "upto", "frozen"), [(chain, "4", ("0.", "1.")), (branches, "left", ("stem.", "bn.", "left."))]
)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fine_tuning_on_the_torch_backend_matches_the_numpy_engine(torch, make, upto, frozen, optimizer):
    before = make().astype(np.float64).state_dict()
    after_np, opt_np = fine_tune(make, upto, "numpy", optimizer)
    after_pt, opt_pt = fine_tune(make, upto, "torch", optimizer)
    for key, value in after_np.items():
        np.testing.assert_allclose(after_pt[key], value, rtol=1e-9, atol=1e-11, err_msg=key)
        if key.startswith(frozen) and "running" not in key:
            assert np.array_equal(after_pt[key], before[key]), key  # weights kept, bit for bit
    for key in ("running_mean", "running_var"):  # eval mode: a frozen BatchNorm's statistics stay
        name = f"{frozen[1]}{key}"
        assert np.array_equal(after_pt[name], after_np[name]), name
        assert np.array_equal(
            after_pt[name], np.array([0.1, -0.2, 0.3, 0.0] if key == "running_mean" else [1.5, 0.5, 2.0, 1.0])
        )
    assert set(opt_pt.state) == set(opt_np.state)  # no optimizer state for a frozen parameter
    assert opt_pt.t == opt_np.t


def test_frozen_modules_get_no_gradient_and_stay_in_eval_mode(torch):
    model = chain()
    freeze_upto(model, "4")
    module = to_torch(model)
    frozen = freeze_like(model, module)
    assert frozen == [module[i] for i in range(5)]  # leaves: each its own module
    assert [name for name, p in module.named_parameters() if not p.requires_grad] == [
        "0.weight", "0.bias", "1.weight", "1.bias",
    ]  # fmt: skip
    assert not any(m.training for m in frozen)


ZOO = ["lenet5", "small_bn", "vgg", "resnet", "googlenet", "resnet18", "densenet121", "squeezenet1_1",
       "mobilenet_v2", "shufflenet_v2_x1_0"]  # fmt: skip


@pytest.mark.parametrize("name", ZOO)
def test_every_frozen_layer_of_the_zoo_has_its_torch_module(torch, name):
    size = 32 if name in ("lenet5", "small_bn", "vgg", "resnet") else 64
    model = build_model(name, in_channels=3, input_size=size, num_classes=4, rng=0)
    freeze_upto(model, ALL_BUT_HEAD)
    module = to_torch(model)
    freeze_like(model, module)
    trained = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trained == {p.path for p in model.parameters()}  # exactly the head trains


def test_a_frozen_layer_without_a_module_of_its_name_is_refused(torch):
    model = chain()
    freeze_upto(model, "4")
    module = torch.nn.Sequential(*list(to_torch(model))[:4])  # no module named 4 (the Dropout)
    with pytest.raises(
        CnnlabError, match=r"--backend torch: cannot freeze Dropout at '4': its PyTorch copy has no module"
    ):
        freeze_like(model, module)


def test_cli_fine_tunes_with_freeze_on_the_torch_backend(torch, tmp_path: Path, capsys) -> None:
    path = tmp_path / "pretrained.npz"
    model = Sequential(Conv2D(1, 4, 3, padding=1, rng=0), BatchNorm2D(4), ReLU(), MaxPool2D(2), Flatten(),
                       Dense(64, 10, rng=1))  # fmt: skip
    model.layers[1].buffers["running_var"][:] = [1.5, 0.5, 2.0, 1.0]
    save(model, path, extra={"input_shape": [1, 8, 8]})
    out = tmp_path / "ft"
    argv = ["train", "--model", str(path), "--data", "digits", "--freeze", "1", "--backend", "torch"]
    code = exit_status([*argv, "--epochs", "1", "--out", str(out), "--quiet", "--no-plots"])
    text = "".join(capsys.readouterr())
    assert code == 0, text
    assert "froze layers 0-1" in text
    before, after = model.state_dict(), load(out / "model.npz").state_dict()
    for key in before:
        if key.startswith(("0.", "1.")):
            assert np.array_equal(after[key], before[key]), key
        else:
            assert not np.allclose(after[key], before[key]), key
