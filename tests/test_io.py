"""save/load: exact round trips, atomic writes, and clear refusals of bad files."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.io import HEADER_KEY, config_parameter_count, load, load_with_extra, save
from cnnlab.layers.base import to_config
from cnnlab.layers.dense import Dense
from cnnlab.layers.sequential import Sequential
from cnnlab.models.classic import CLASSIC
from cnnlab.models.zoo import MODELS, build_model

#: The small zoo models; the classic ImageNet architectures: tests/models/test_classic_zoo.py.
SMALL_MODELS = [name for name in MODELS if name not in CLASSIC]

SMALL_ARGS = {"vgg": {"depth": 2, "width": 4}, "resnet": {"depth": 2, "width": 4}}


def trained_model(name: str, dtype: type = np.float32) -> Sequential:
    """A zoo model on 8x8 inputs after one train-mode forward (BatchNorm stats moved)."""
    model = build_model(
        name, in_channels=2, input_size=(8, 8), num_classes=3, rng=7, **SMALL_ARGS.get(name, {})
    )
    model.astype(dtype)
    model.forward(np.random.default_rng(0).standard_normal((4, 2, 8, 8)).astype(dtype))
    return model


def assert_same_state(a: Sequential, b: Sequential) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert sa[key].tobytes() == sb[key].tobytes(), key  # bitwise


def write_npz(path, header, arrays=None, allow_pickle=False) -> None:
    """Craft an .npz: ``header`` is a dict (JSON-encoded), bytes, or None (no header)."""
    arrays = dict(arrays or {})
    if header is not None:
        raw = header if isinstance(header, bytes) else json.dumps(header).encode()
        arrays[HEADER_KEY] = np.frombuffer(raw, dtype=np.uint8)
    np.savez(path, allow_pickle=allow_pickle, **arrays)


def header_for(model: Sequential, **changes) -> dict:
    header = {
        "format": "cnnlab",
        "format_version": 1,
        "dtype": "float32",
        "architecture": to_config(model),
        "extra": {},
    }
    header.update(changes)
    return header


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_round_trip_every_zoo_model_is_exact(tmp_path, name, dtype, suffix):
    model = trained_model(name, dtype)
    path = save(model, tmp_path / f"model{suffix}")
    loaded = load(path)
    assert to_config(loaded) == to_config(model)
    assert loaded.dtype == np.dtype(dtype)
    assert_same_state(model, loaded)
    x = np.random.default_rng(1).standard_normal((3, 2, 8, 8)).astype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_buffers_are_saved(tmp_path):
    model = trained_model("small_bn")
    assert not np.all(model.state_dict()["1.running_mean"] == 0)  # the forward moved them
    loaded = load(save(model, tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.state_dict()["1.running_var"], model.state_dict()["1.running_var"])


def test_extra_round_trip_and_file_is_plain_npz(tmp_path):
    model = trained_model("small")
    extra = {"classes": ["cat", "dog", "cow"], "input_shape": (2, 8, 8), "mean": np.array([0.5, 0.25])}
    path = save(model, tmp_path / "m.npz", extra=extra)
    _, got = load_with_extra(path)
    assert got == {"classes": ["cat", "dog", "cow"], "input_shape": [2, 8, 8], "mean": [0.5, 0.25]}
    with np.load(path, allow_pickle=False) as npz:  # readable without cnnlab, no pickle
        header = json.loads(npz[HEADER_KEY].tobytes())
        assert header["format_version"] == 1 and header["dtype"] == "float32"
        np.testing.assert_array_equal(npz["0.weight"], model.state_dict()["0.weight"])


def test_save_writes_exactly_the_given_path(tmp_path):
    save(trained_model("small"), tmp_path / "weights.bin")
    assert os.listdir(tmp_path) == ["weights.bin"]
    assert load(tmp_path / "weights.bin") is not None


def test_extra_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="must be JSON-serializable"):
        save(trained_model("small"), tmp_path / "m.npz", extra={"f": object()})


# ---- atomic writes -------------------------------------------------------------------------
def test_failure_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = trained_model("small")
    save(old, path)
    before = path.read_bytes()

    def half_write(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_write)
    with pytest.raises(OSError, match="disk full"):
        save(trained_model("lenet5"), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # the temp file is cleaned up
    assert_same_state(old, load(path))


def test_failure_at_replace_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save(trained_model("small"), path)
    before = path.read_bytes()

    def fail(*args):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        save(trained_model("vgg"), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


# ---- bad files -----------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        load(tmp_path / "nope.npz")


def test_wrong_magic(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"GIF89a not a model at all")
    with pytest.raises(CnnlabError, match=r"not a cnnlab model file.*Received: first bytes b'GIF89a"):
        load(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "m.npz"
    save(trained_model("small"), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CnnlabError, match=r"not a readable \.npz file"):
        load(path)


def test_object_array_is_refused(tmp_path):
    model = Sequential(Dense(2, 1, rng=0))
    path = tmp_path / "m.npz"
    evil = np.empty(1, dtype=object)
    evil[0] = {"__reduce__": "payload"}
    write_npz(path, header_for(model), {"0.weight": evil, "0.bias": np.zeros(1)}, allow_pickle=True)
    with pytest.raises(CnnlabError, match=r"array `0.weight` has dtype object.*pickle"):
        load(path)


def test_object_header_is_refused(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, allow_pickle=True, **{HEADER_KEY: np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CnnlabError, match=r"array `__cnnlab__` has dtype object.*pickle"):
        load(path)


def test_missing_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, None, {"0.weight": np.zeros((1, 2))})
    with pytest.raises(CnnlabError, match="no '__cnnlab__' header array"):
        load(path)


def test_garbled_header(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, b'{"format": "cnnlab", "architec')
    with pytest.raises(CnnlabError, match="header is not valid JSON"):
        load(path)


@pytest.mark.parametrize("header", [[1, 2], {"format": "other", "architecture": {}}, {"format": "cnnlab"}])
def test_header_with_wrong_structure(tmp_path, header):
    path = tmp_path / "m.npz"
    write_npz(path, header)
    with pytest.raises(CnnlabError, match="must be a JSON object with 'format': 'cnnlab'"):
        load(path)


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, header_for(Sequential(), format_version=99))
    with pytest.raises(CnnlabError, match="format_version 99 is not supported"):
        load(path)


def test_non_float_header_dtype(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, header_for(Sequential(), dtype="int64"))
    with pytest.raises(CnnlabError, match=r"header dtype must be a float dtype\. Received: 'int64'"):
        load(path)


def test_unknown_layer_type(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, header_for(Sequential(), architecture={"type": "Conv3D", "args": {}}))
    with pytest.raises(ValueError, match=r"unknown layer type 'Conv3D'. Known types: .*Conv2D"):
        load(path)


def test_shape_mismatch_names_key_expected_and_received(tmp_path):
    model = Sequential(Dense(4, 3, rng=0))
    path = tmp_path / "m.npz"
    write_npz(path, header_for(model), {"0.weight": np.zeros((3, 5), np.float32), "0.bias": np.zeros(3)})
    with pytest.raises(
        CnnlabError,
        match=r"array `0.weight` does not match .*expected shape \(3, 4\). Received: shape \(3, 5\)",
    ):
        load(path)


def test_missing_and_unexpected_arrays(tmp_path):
    model = Sequential(Dense(4, 3, rng=0))
    path = tmp_path / "m.npz"
    write_npz(path, header_for(model), {"0.weight": np.zeros((3, 4)), "1.bias": np.zeros(3)})
    with pytest.raises(CnnlabError, match=r"Missing: \['0.bias'\]. Unexpected: \['1.bias'\]"):
        load(path)


def test_absurd_architecture_is_refused_before_allocating(tmp_path):
    path = tmp_path / "m.npz"
    huge = {"type": "Sequential", "args": {"layers": [
        {"type": "Dense", "args": {"in_features": 2**20, "out_features": 2**20}}
    ]}}  # fmt: skip
    write_npz(path, header_for(Sequential(), architecture=huge))
    with pytest.raises(CnnlabError, match=r"declares 1,099,512,676,352 parameters, more than the limit"):
        load(path)


def test_config_parameter_count_matches_built_models():
    for name in SMALL_MODELS:
        model = build_model(name, input_size=(8, 8), rng=0, **SMALL_ARGS.get(name, {}))
        assert config_parameter_count(to_config(model)) == sum(p.value.size for p in model.parameters())


# ---- safetensors specifics ---------------------------------------------------------------------
def test_safetensors_without_cnnlab_metadata(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"0.weight": np.zeros((3, 4), np.float32)}, str(path))
    with pytest.raises(CnnlabError, match="no '__cnnlab__' entry in the safetensors metadata"):
        load(path)


def test_safetensors_shape_mismatch(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    header = json.dumps(header_for(Sequential(Dense(4, 3, rng=0))))
    arrays = {"0.weight": np.zeros((4, 3), np.float32), "0.bias": np.zeros(3, np.float32)}
    save_file(arrays, str(path), metadata={HEADER_KEY: header})
    with pytest.raises(CnnlabError, match=r"`0.weight` .*expected shape \(3, 4\). Received: shape \(4, 3\)"):
        load(path)


def test_safetensors_missing_package_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(CnnlabError, match="pip install safetensors"):
        save(trained_model("small"), tmp_path / "m.safetensors")


def test_saved_file_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save(trained_model("small"), tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not the 0o600 of a bare temp file


def test_invalid_architecture_args(tmp_path):
    path = tmp_path / "m.npz"
    write_npz(path, header_for(Sequential(), architecture={"type": "Dense", "args": 5}))
    with pytest.raises(CnnlabError, match="invalid architecture in the header"):
        load(path)


def test_safetensors_header_longer_than_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes((10**6).to_bytes(8, "little") + b'{"a": 1}')
    with pytest.raises(CnnlabError, match="header length 1000000 is larger than the file"):
        load(path)
