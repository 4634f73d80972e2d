"""to_onnx: onnxruntime runs the file with cnnlab's outputs (float32, 1e-5), any batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from every_layer import EVERY_LAYER_INPUT, build_every_layer_model

from cnnlab.interop.onnx import to_onnx
from cnnlab.layers.base import Layer
from cnnlab.models import MODELS, build_model
from cnnlab.models.classic import CLASSIC

#: The small zoo models; the classic ImageNet architectures: tests/models/test_classic_zoo.py.
SMALL_MODELS = [name for name in MODELS if name not in CLASSIC]

ZOO_INPUT = {
    "lenet5": (1, 8, 8),
    "small": (1, 8, 8),
    "small_bn": (1, 8, 8),
    "vgg": (3, 16, 16),
    "resnet": (3, 16, 16),
}


def trained_looking(model: Layer) -> Layer:
    """Non-trivial BatchNorm running statistics, so eval mode is really tested."""
    rng = np.random.default_rng(5)
    for _, layer in model.named_layers():
        if "running_var" in layer.buffers:
            layer.buffers["running_mean"][:] = rng.normal(size=layer.buffers["running_mean"].shape)
            layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, size=layer.buffers["running_var"].shape)
    return model


def check_onnx(ort: Any, model: Layer, path: Path, input_shape: tuple[int, ...]) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    rng = np.random.default_rng(0)
    for batch in (1, 5):  # the batch axis is dynamic
        x = rng.normal(size=(batch, *input_shape)).astype(np.float32)
        (y,) = session.run(None, {"input": x})
        np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_zoo_models_run_in_onnxruntime(onnxruntime: Any, torch: Any, tmp_path: Path, name: str) -> None:
    C, H, W = ZOO_INPUT[name]
    kwargs = {"width": 4} if name in ("vgg", "resnet") else {}
    model = trained_looking(
        build_model(name, in_channels=C, input_size=(H, W), num_classes=5, rng=0, **kwargs)
    )
    # The TorchScript exporter is ~10x faster; the default (dynamo) one is tested below.
    path = to_onnx(model, tmp_path / f"{name}.onnx", (C, H, W), dynamo=False)
    check_onnx(onnxruntime, model, path, (C, H, W))
    assert model.training  # to_onnx exports in eval mode without changing the model


def test_default_exporter_on_every_layer_type(onnxruntime: Any, torch: Any, tmp_path: Path) -> None:
    model = trained_looking(build_every_layer_model())
    path = to_onnx(model, tmp_path / "sub" / "every.onnx", EVERY_LAYER_INPUT)
    assert path == tmp_path / "sub" / "every.onnx" and path.is_file()
    assert not list(path.parent.glob("*.data")), "weights must be inside the one .onnx file"
    check_onnx(onnxruntime, model, path, EVERY_LAYER_INPUT)


def test_bad_input_shape_is_a_clear_error(onnxruntime: Any, torch: Any, tmp_path: Path) -> None:
    model = build_model("small", input_size=8, rng=0)
    with pytest.raises(ValueError, match=r"to_onnx: argument `input_shape` must be one example's shape"):
        to_onnx(model, tmp_path / "m.onnx", (0, 8, 8))
    with pytest.raises(ValueError, match="Conv2D: input must have 1 channels"):
        to_onnx(model, tmp_path / "m.onnx", (3, 8, 8))
