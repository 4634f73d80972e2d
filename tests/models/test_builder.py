"""Models from YAML/JSON architecture files: shape inference, placeholders, clear errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.layers.base import to_config
from cnnlab.models.builder import model_from_file, model_from_spec
from cnnlab.models.zoo import small

YAML_SPEC = """\
layers:
  - Conv2D: {out_channels: 32, kernel_size: 3, padding: 1}
  - ReLU
  - MaxPool2D: {kernel_size: 2}
  - Conv2D: {out_channels: 64, kernel_size: 3, padding: 1}
  - ReLU
  - MaxPool2D: {kernel_size: 2}
  - Flatten
  - Dense: {out_features: 128}
  - ReLU
  - Dense: {out_features: num_classes}
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_file_builds_the_reference_model(tmp_path):
    path = write(tmp_path, "arch.yaml", YAML_SPEC)
    model = model_from_file(path, in_channels=3, input_size=(32, 32), num_classes=5, rng=0)
    reference = small(in_channels=3, input_size=(32, 32), num_classes=5, rng=0)
    assert to_config(model) == to_config(reference)
    sa, sb = model.state_dict(), reference.state_dict()  # same rng order -> same weights
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert model.forward(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 5)


def test_json_file_same_as_yaml(tmp_path):
    import yaml

    spec = yaml.safe_load(YAML_SPEC)
    from_json = model_from_file(write(tmp_path, "a.json", json.dumps(spec)), 1, 28, 10, rng=1)
    from_yaml = model_from_file(write(tmp_path, "a.yml", YAML_SPEC), 1, 28, 10, rng=1)
    assert to_config(from_json) == to_config(from_yaml)
    assert from_json[7].in_features == 64 * 7 * 7


def test_full_to_config_format(tmp_path):
    reference = small(in_channels=1, input_size=(8, 8), num_classes=4, rng=0)
    path = write(tmp_path, "full.json", json.dumps(to_config(reference)))
    assert to_config(model_from_file(path, 1, (8, 8), 4)) == to_config(reference)
    with pytest.raises(ShapeError):  # the fixed sizes do not fit another input size
        model_from_file(path, 1, (28, 28), 4)


def test_batchnorm_and_residual_are_inferred(tmp_path):
    text = """\
layers:
  - Conv2D: {out_channels: 8, kernel_size: 3, padding: 1}
  - BatchNorm2D
  - Residual:
      block:
        - Conv2D: {out_channels: 16, kernel_size: 3, padding: 1, stride: 2}
        - ReLU
      shortcut:
        - Conv2D: {out_channels: 16, kernel_size: 1, stride: 2}
  - GlobalAvgPool2D
  - Flatten
  - Dense: {out_features: num_classes}
"""
    model = model_from_file(write(tmp_path, "res.yaml", text), 2, 8, 3, rng=0)
    assert model[1].num_features == 8
    assert model[2].shortcut is not None
    assert model.forward(np.ones((2, 2, 8, 8), np.float32)).shape == (2, 3)


def test_top_level_list_and_type_entries():
    spec = [{"type": "Flatten"}, {"type": "Dense", "args": {"out_features": "num_classes"}}]
    model = model_from_spec(spec, in_channels=2, input_size=(3, 4), num_classes=6)
    assert model[1].in_features == 24 and model[1].out_features == 6


def test_seeded_builds_are_identical(tmp_path):
    path = write(tmp_path, "arch.yaml", YAML_SPEC)
    a, b = (model_from_file(path, 1, 8, 10, rng=5).state_dict() for _ in range(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_layer_lists_valid_names():
    with pytest.raises(
        ValueError, match=r"layers\[1\]: unknown layer 'Conv3D'. Valid layers: .*Conv2D.*Dense"
    ):
        model_from_spec({"layers": ["ReLU", {"Conv3D": {"out_channels": 2}}]}, 1, 8, 10)


def test_unknown_argument_names_index_and_arg():
    spec = {"layers": [{"Conv2D": {"out_channels": 4, "kernal_size": 3}}]}
    with pytest.raises(
        ValueError, match=r"layers\[0\] \(Conv2D\): unknown argument `kernal_size`. Valid arguments"
    ):
        model_from_spec(spec, 1, 8, 10)


def test_missing_argument():
    with pytest.raises(ValueError, match=r"layers\[0\] \(Conv2D\): missing argument `out_channels`"):
        model_from_spec({"layers": [{"Conv2D": {"kernel_size": 3}}]}, 1, 8, 10)


def test_bad_argument_value_names_index_and_arg():
    spec = {"layers": ["Flatten", {"Dense": {"out_features": 4}}, {"Dropout": {"p": 1.5}}]}
    with pytest.raises(ValueError, match=r"layers\[2\] \(Dropout\): .*`p`"):
        model_from_spec(spec, 1, 8, 10)


def test_shape_that_does_not_fit_names_the_layer():
    spec = {"layers": [{"Conv2D": {"out_channels": 4, "kernel_size": 9}}]}
    with pytest.raises(
        ShapeError, match=r"layers\[0\] \(Conv2D\): input of shape \(1, 1, 8, 8\) does not fit"
    ):
        model_from_spec(spec, 1, 8, 10)


def test_bad_structure():
    with pytest.raises(ValueError, match="non-empty list of layers"):
        model_from_spec({"layer": []}, 1, 8, 10)
    with pytest.raises(ValueError, match=r"layers\[0\]: a layer must be a name"):
        model_from_spec([{"ReLU": None, "Flatten": None}], 1, 8, 10)


def test_file_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no architecture file"):
        model_from_file(tmp_path / "none.yaml", 1, 8, 10)
    with pytest.raises(ValueError, match="is not valid JSON"):
        model_from_file(write(tmp_path, "bad.json", "{layers: "), 1, 8, 10)
    with pytest.raises(ValueError, match="is not valid YAML"):
        model_from_file(write(tmp_path, "bad.yaml", "layers: [ReLU"), 1, 8, 10)
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(CnnlabError, match="YAML files need PyYAML: pip install pyyaml"):
        model_from_file(write(tmp_path, "ok.yaml", YAML_SPEC), 1, 8, 10)
