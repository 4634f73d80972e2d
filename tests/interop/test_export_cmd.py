"""`cnnlab export`: the generated model.py loads model.pt and matches; ONNX via the CLI; the example."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from every_layer import EVERY_LAYER_INPUT, build_every_layer_model

from cnnlab.cli.main import main
from cnnlab.io import save
from cnnlab.layers.base import Layer
from cnnlab.models import build_model

ROOT = Path(__file__).resolve().parents[2]


def import_generated(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_generated(torch: Any, folder: Path, model: Layer, input_shape: tuple[int, ...], name: str) -> Any:
    """The user's three lines: build(), load_state_dict(torch.load(...)), and the outputs match."""
    generated = import_generated(folder / "model.py", name)
    net = generated.build()
    net.load_state_dict(torch.load(folder / "model.pt"))
    net.eval()
    x = np.random.default_rng(0).normal(size=(3, *input_shape)).astype(model.dtype)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-12 if model.dtype == np.float64 else 1e-5)
    return generated


def test_export_run_folder_to_torch(torch: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    model = build_model("resnet", in_channels=3, input_size=8, num_classes=4, rng=0, depth=2, width=4)
    extra = {
        "input_shape": [3, 8, 8],
        "classes": ["a", "b", "c", "d"],
        "normalization": {"mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0]},
    }
    save(model, run / "model.npz", extra=extra)
    assert main(["export", str(run), "--to", "torch"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'torch' / 'model.pt'}" in out and "normalize inputs as in training" in out
    generated = check_generated(torch, run / "torch", model, (3, 8, 8), "generated_resnet")
    assert generated.CLASSES == ["a", "b", "c", "d"] and generated.MEAN == [0.1, 0.2, 0.3]
    assert generated.INPUT_SHAPE == (3, 8, 8)
    source = (run / "torch" / "model.py").read_text()
    assert "class Residual(nn.Module):" in source and "class Maxout" not in source
    assert "cnnlab" not in source.replace("cnnlab model", "").replace("cnnlab export", "").replace(
        "cnnlab layers", ""
    ), "model.py must not need cnnlab"


def test_every_layer_type_in_float64_to_generated_source(torch: Any, tmp_path: Path) -> None:
    model = build_every_layer_model().astype(np.float64)
    path = save(model, tmp_path / "every.npz")
    assert main(["export", str(path), "--to", "torch", "--out", str(tmp_path / "pt")]) == 0
    check_generated(torch, tmp_path / "pt", model, EVERY_LAYER_INPUT, "generated_every")
    source = (tmp_path / "pt" / "model.py").read_text()
    for name in ("Conv2dSame", "Maxout", "GlobalAvgPool2d", "Residual"):
        assert f"class {name}(" in source, name
    assert "return model.to(torch.float64)" in source
    compile(source, "model.py", "exec")


def test_export_zoo_name_to_torch_default_folder(
    torch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", "small", "--to", "torch", "--input-shape", "1,8,8", "--classes", "3"]) == 0
    assert (tmp_path / "small_torch" / "model.py").is_file()
    model = build_model("small", in_channels=1, input_size=(8, 8), num_classes=3, rng=0)
    check_generated(torch, tmp_path / "small_torch", model, (1, 8, 8), "generated_small")


def test_export_to_onnx(
    onnxruntime: Any, torch: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_model("lenet5", input_size=8, num_classes=3, rng=0)
    path = save(model, tmp_path / "lenet.npz", extra={"input_shape": [1, 8, 8]})
    assert main(["export", str(path), "--to", "onnx"]) == 0
    assert "wrote" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "lenet.onnx"))
    x = np.random.default_rng(1).normal(size=(2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), rtol=0, atol=1e-5)
    # --out: a folder gets the model's own name inside, a bare name gets .onnx added
    (tmp_path / "exports").mkdir()
    for out, written in (("exports", "exports/lenet.onnx"), ("bare", "bare.onnx"), ("x.onnx", "x.onnx")):
        assert main(["export", str(path), "--to", "onnx", "--out", str(tmp_path / out)]) == 0
        assert f"wrote {tmp_path / written} " in capsys.readouterr().out
        assert onnxruntime.InferenceSession(str(tmp_path / written)).run(None, {"input": x})[0].shape == (
            2,
            3,
        )


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save(build_model("small", input_size=8, rng=0), tmp_path / "m.npz")
    assert main(["export", str(path), "--to", "onnx"]) == 1
    assert "needs the input shape: pass --input-shape C,H,W" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--to", "torch"]) == 1
    assert "no model at" in capsys.readouterr().err
    assert main(["export", str(path), "--to", "torch", "--out", str(path)]) == 1  # a file, not a folder
    assert capsys.readouterr().err.strip() == (
        "cnnlab export: error: export --to torch writes a folder (model.pt, model.py); "
        f"--out {path} is a file"
    )
    with pytest.raises(SystemExit):
        main(["export", str(path), "--to", "keras"])
    assert "invalid choice: 'keras'" in capsys.readouterr().err


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_pytorch_example_script_trains_one_epoch(
    torch: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    # In-process (torch is imported already); `python examples/pytorch_classification.py` runs main().
    example = import_generated(ROOT / "examples" / "pytorch_classification.py", "pytorch_classification")
    example.main(["--data-dir", str(tmp_path), "--epochs", "1", "--limit", "32"])
    out = capsys.readouterr().out
    assert "train (32, 1, 28, 28), test (20, 1, 28, 28)" in out
    assert "epoch 1: train loss" in out and "test loss" in out


def test_pytorch_example_reads_what_cnnlab_reads(torch: Any, tmp_path: Path) -> None:
    from cnnlab.data.idx import read_idx

    images = np.random.default_rng(1).integers(0, 256, (3, 28, 28))
    write_idx(tmp_path / "x.gz", images)
    example = import_generated(ROOT / "examples" / "pytorch_classification.py", "pytorch_classification")
    assert np.array_equal(example.read_idx(tmp_path / "x.gz"), read_idx(tmp_path / "x.gz"))
    assert np.array_equal(example.read_idx(tmp_path / "x.gz"), images)
