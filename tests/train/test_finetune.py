"""Fine-tuning a trained model: --model FILE|RUN|.onnx, --new-head, --freeze (train.runs.finetune)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli_run import exit_status
from cnnlab.errors import CnnlabError
from cnnlab.io import load, save
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models.head import find_head, replace_head
from cnnlab.optim import SGD
from cnnlab.train.loop.callbacks import Callback
from cnnlab.train.loop.checkpoint import TrainingInterrupted
from cnnlab.train.loop.engines.numpy_engine import NumpyEngine
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.finetune import freeze_upto, load_pretrained, start_model
from cnnlab.train.runs.run import train_run

Image = pytest.importorskip("PIL.Image")

FROZEN = ("0.", "1.")  # the state_dict prefixes of --freeze 2 on `net()`: Conv2D, BatchNorm2D


def net(classes: int = 5, seed: int = 0) -> Sequential:
    """A small conv net for 1x12x12 images: conv-BN-ReLU-pool, conv-ReLU-pool, Dense."""
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=seed),
        BatchNorm2D(4),
        ReLU(),
        MaxPool2D(2),  # (4, 6, 6)
        Conv2D(4, 6, 3, padding=1, rng=seed + 1),
        ReLU(),
        MaxPool2D(2),  # (6, 3, 3)
        Flatten(),
        Dense(54, classes, rng=seed + 2),
    )


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A 'trained' model file (5 classes, 1x12x12 input), BatchNorm statistics not trivial."""
    model = net()
    model.layers[1].buffers["running_mean"][:] = [0.1, -0.2, 0.3, 0.0]
    model.layers[1].buffers["running_var"][:] = [1.5, 0.5, 2.0, 1.0]
    path = tmp_path / "pretrained.npz"
    save(model, path, extra={"input_shape": [1, 12, 12], "classes": list("abcde")})
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three classes of 12x12 grayscale images (stripes, dots, noise), 12 per class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for k, name in enumerate(("bars", "dots", "plain")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            img = rng.random((12, 12)) * 60
            if k == 0:
                img[:, 2::4] += 180
            elif k == 1:
                img[2::4, 2::4] += 190
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``cnnlab argv`` in-process: (exit status, stdout + stderr)."""
    code = exit_status(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


QUICK = ("--epochs", "2", "--batch-size", "8", "--quiet", "--no-plots", "--lr", "0.01")


def weights(path: Path) -> dict[str, np.ndarray]:
    return load(path).state_dict()


def test_fine_tune_keeps_frozen_weights_bit_identical_and_trains_the_rest(
    saved: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ft"
    code, text = cli(
        capsys, "train", "--model", str(saved), "--data", str(folder), "--new-head", "--freeze", "2",
        "--out", str(out), *QUICK,
    )  # fmt: skip
    assert code == 0, text
    assert "replaced 8: Dense(54, 5) -> Dense(54, 3)" in text
    assert "froze layers 0-2 (48 of 435 parameters); training the rest" in text
    before, after = weights(saved), weights(out / "model.npz")
    assert after["8.weight"].shape == (3, 54)  # the new head: one score per class of the folder
    start, _ = start_model(load_pretrained(str(saved)), 3, True, "2", np.random.default_rng(0))  # --seed 0
    assert not np.allclose(after["8.weight"], start.state_dict()["8.weight"])  # the head trained
    for key in after:
        if key.startswith(FROZEN):  # frozen, BatchNorm's running statistics included (eval mode)
            assert np.array_equal(after[key], before[key]), key
        elif key.startswith("4."):  # the conv after the frozen part trained
            assert not np.allclose(after[key], before[key]), key
    config = json.loads((out / "config.json").read_text())
    assert config["freeze"] == "2" and config["new_head"] is True
    assert config["model"] == str(saved.resolve())


def test_a_frozen_step_computes_no_gradient_for_the_frozen_layers(rng: np.random.Generator) -> None:
    model = net()
    freeze_upto(model, "3")
    calls: list[str] = []
    for i, layer in enumerate(model.layers):  # count the backward calls of every layer

        def counted(dy: np.ndarray, _i: int = i, _b=layer.backward) -> np.ndarray:  # type: ignore[no-untyped-def]
            calls.append(str(_i))
            return _b(dy)

        layer.backward = counted  # type: ignore[method-assign]
    engine = NumpyEngine(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1))
    engine.begin()
    x, y = rng.standard_normal((4, 1, 12, 12)).astype(np.float32), np.array([0, 1, 2, 3])
    engine.train_step(x, y)
    engine.end(True)
    assert calls[-1] == "4" and not {"0", "1", "2", "3"} & set(calls)  # frozen 0-3 never visited
    assert model.layers[0].grads == {} and model.layers[1].grads == {}  # no weight gradient
    assert set(model.layers[4].grads) == {"weight", "bias"}
    assert [p.path for p in model.parameters()] == ["4.weight", "4.bias", "8.weight", "8.bias"]
    assert not model.layers[1].training  # frozen BatchNorm runs on its running statistics


def test_a_frozen_graph_skips_the_frozen_nodes_and_trains_a_sibling_branch(rng: np.random.Generator) -> None:
    g = Graph("x")
    g.add("stem", Conv2D(1, 4, 3, padding=1, rng=0), "x")
    g.add("left", Conv2D(4, 2, 1, rng=1), "stem")
    g.add("right", Conv2D(4, 3, 3, padding=1, rng=2), "stem")
    g.add("cat", Concat(), ["left", "right"])
    g.add("flat", Flatten(), "cat")
    g.output(g.add("fc", Dense(5 * 12 * 12, 3, rng=3), "flat"))
    assert (
        freeze_upto(g, "left")
        == "froze node left and the 1 nodes before it (50 of 2,324 parameters); training the rest"
    )
    engine = NumpyEngine(g, SoftmaxCrossEntropy(), SGD(g.parameters(), lr=0.1))
    engine.begin()
    before = g.state_dict()
    engine.train_step(rng.standard_normal((2, 1, 12, 12)), np.array([0, 2]))
    engine.end(True)
    assert g["stem"].grads == {} and g["left"].grads == {}
    assert set(g["right"].grads) == {"weight", "bias"} and set(g["fc"].grads) == {"weight", "bias"}
    after = g.state_dict()
    assert all(np.array_equal(after[k], before[k]) for k in before if k.startswith(("stem.", "left.")))
    assert not np.allclose(after["right.weight"], before["right.weight"])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_resume_keeps_the_freeze(saved: Path, folder: Path, tmp_path: Path, backend: str, request) -> None:
    if backend == "torch":
        request.getfixturevalue("torch")  # the oracle: skipped without torch, never in CI

    class StopAfterEpochOne(Callback):
        def on_epoch_begin(self, epoch: int, ctx: object) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    settings = dict(
        model=str(saved), data=str(folder), new_head=True, freeze="2", epochs=2, batch_size=8, backend=backend
    )
    whole = train_run(TrainConfig(**settings, out=str(tmp_path / "whole")), verbose=False)  # type: ignore[arg-type]
    config = TrainConfig(**settings, out=str(tmp_path / "run"))  # type: ignore[arg-type]
    with pytest.raises(TrainingInterrupted):
        train_run(config, verbose=False, callbacks=[StopAfterEpochOne()])
    resumed = train_run(config, verbose=False, resume=True)
    original, a, b = (
        weights(saved),
        weights(whole.run_dir / "model.npz"),
        weights(resumed.run_dir / "model.npz"),
    )
    assert all(np.array_equal(a[k], b[k]) for k in a)  # resumed bit for bit
    assert all(np.array_equal(b[k], original[k]) for k in b if k.startswith(FROZEN))  # still frozen


def test_fine_tune_from_a_run_folder_and_from_onnx(
    saved: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    code, text = cli(
        capsys,
        "train",
        "--model",
        str(saved),
        "--data",
        str(folder),
        "--new-head",
        "--out",
        str(first),
        *QUICK,
    )
    assert code == 0, text
    # a run folder stands for its model.npz: 3 outputs fit the folder's 3 classes, no new head needed
    code, text = cli(capsys, "train", "--model", str(first), "--data", str(folder),
                     "--freeze", "all-but-head", "--out", str(tmp_path / "second"), *QUICK)  # fmt: skip
    assert code == 0, text
    assert "froze every layer but the head 8 (270 of 435 parameters)" in text
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    from cnnlab.interop import to_onnx

    to_onnx(load(saved), tmp_path / "m.onnx", (1, 12, 12))
    onnx_run = tmp_path / "onnx"
    code, text = cli(capsys, "train", "--model", str(tmp_path / "m.onnx"), "--data", str(folder),
                     "--new-head", "--freeze", "all-but-head", "--out", str(onnx_run), *QUICK)  # fmt: skip
    assert code == 0, text
    assert find_head(load(onnx_run / "model.npz")).layer.params["weight"].shape == (3, 54)


def test_errors_name_the_choices_and_the_numbers(
    saved: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(*argv: str) -> str:
        code, text = cli(capsys, "train", *argv, "--out", str(tmp_path / "never"), *QUICK)
        assert code != 0 and not (tmp_path / "never").exists()
        return text

    base = ("--model", str(saved), "--data", str(folder))
    text = fails(*base, "--new-head", "--freeze", "conv9")
    assert (
        "--freeze must be a layer index 0-8 of this Sequential "
        "(0: Conv2D(1, 4, kernel_size=3, padding=1), 1: BatchNorm2D(4)" in text
    )
    assert "or all-but-head. Received: --freeze conv9" in text
    text = fails(*base, "--new-head", "--freeze", "8")
    assert "--freeze 8 freezes every layer with parameters: nothing would train" in text
    text = fails(*base)  # 5 outputs, 3 classes, no --new-head
    assert "has 5 outputs per image, but the data has 3 classes. Give --new-head" in text
    text = fails("--model", str(saved), "--data", "digits", "--new-head")
    assert "takes images of 1x12x12 (channels x height x width), but the dataset digits has 1x8x8" in text
    text = fails("--model", "small", "--freeze", "2")
    assert "argument `freeze` must be used with --model a trained model (.npz, .onnx or a run folder)" in text
    g = Graph("x")
    g.add("a", Conv2D(1, 2, 3, rng=0), "x")
    g.add("flat", Flatten(), "a")
    g.output(g.add("fc", Dense(200, 3, rng=0), "flat"))
    with pytest.raises(
        CnnlabError,
        match=r"--freeze must be a node of this Graph \(a, flat, fc\) or all-but-head. Received: --freeze b",
    ):
        freeze_upto(g, "b")


def test_new_head_finds_a_1x1_conv_classifier_and_drops_a_final_softmax() -> None:
    from cnnlab.layers.activations import Softmax
    from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D

    g = Graph("x")
    g.add("features", Conv2D(3, 8, 3, rng=0), "x")
    g.add("classifier", Conv2D(8, 10, 1, rng=1), "features")  # SqueezeNet's classifier
    g.add("relu", ReLU(), "classifier")
    g.add("pool", AdaptiveAvgPool2D(1), "relu")
    g.add("flat", Flatten(), "pool")
    g.output(g.add("prob", Softmax(), "flat"))
    assert find_head(g).path == "classifier"
    text = replace_head(g, 4, rng=0)
    assert (
        text == "replaced classifier: Conv2D(8, 10, kernel_size=1) -> Conv2D(8, 4, kernel_size=1); "
        "dropped the final softmax (prob)"
    )
    assert g.output_name == "flat" and g.output_shape((1, 3, 9, 9)) == (1, 4)
    with pytest.raises(
        CnnlabError,
        match=r"the last layer with parameters, 0 \(Conv2D\(1, 2, kernel_size=3\)\), is not a classifier",
    ):
        find_head(Sequential(Conv2D(1, 2, 3, rng=0), ReLU()))
