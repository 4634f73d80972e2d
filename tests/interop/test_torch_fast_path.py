"""The torch backend as the fast path (issue 25): its layout rule, --compile and its fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models import build_model
from cnnlab.optim import make_optimizer
from cnnlab.train.loop.engines import make_engine
from cnnlab.train.loop.engines.torch_engine import TorchEngine, choose_layout
from cnnlab.train.loop.fit import fit
from cnnlab.train.runs.config import TrainConfig


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return gen.normal(size=(n, 1, 8, 8)).astype(np.float32), gen.integers(0, 10, size=n)


def _parts(dtype: Any = np.float32, model: str = "small_bn") -> tuple[Any, Any, Any]:
    net = build_model(model, in_channels=1, input_size=8, num_classes=10, rng=0).astype(dtype)
    return net, SoftmaxCrossEntropy(), make_optimizer("adam", net.parameters(), lr=0.01)


def _engine(layout: str = "auto", dtype: Any = np.float32, **kwargs: Any) -> TorchEngine:
    model, loss, optimizer = _parts(dtype)
    return TorchEngine(model, loss, optimizer, seed=0, device="cpu", batch_size=16, layout=layout, **kwargs)


def test_the_layout_rule_channels_last_for_float32_conv_nets_on_the_cpu(torch):
    cpu = torch.device("cpu")
    conv_net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    dense_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert choose_layout("auto", conv_net, cpu, np.float32) == "channels_last"
    assert choose_layout("auto", conv_net, cpu, np.float64) == "nchw"  # the parity option
    assert choose_layout("auto", dense_net, cpu, np.float32) == "nchw"
    assert choose_layout("auto", conv_net, torch.device("meta"), np.float32) == "nchw"  # not the CPU
    assert choose_layout("nchw", conv_net, cpu, np.float32) == "nchw"
    with pytest.raises(
        ValueError, match=r"TorchEngine: argument `layout` must be one of auto, nchw, channels_last"
    ):
        _engine(layout="nhwc")


def test_the_engine_trains_in_channels_last_and_hands_back_nchw_arrays(torch):
    engine = _engine()
    engine.begin()
    assert engine.layout == "channels_last"
    convs = [m for m in engine.module.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not convs[0].weight.is_contiguous()  # really NHWC in memory (C_in = 1 would not tell)
    x, y = _data(16)
    engine.begin_epoch(1, 0.01)
    engine.train_step(x, y)
    engine.end_epoch()
    for key, value in engine.model.state_dict().items():
        assert value.flags.c_contiguous, key
    for path, state in engine.optimizer.state.items():
        assert all(buf.flags.c_contiguous for buf in state.values()), path
    assert _engine(dtype=np.float64).layout == "auto"  # decided in begin()
    float64 = _engine(dtype=np.float64)
    float64.begin()
    assert float64.layout == "nchw"


def test_channels_last_trains_like_nchw_within_float32_rounding(torch):
    x, y = _data(64)
    results = {}
    for layout in ("nchw", "channels_last"):
        engine = _engine(layout)
        engine.begin()
        engine.begin_epoch(1, 0.01)
        losses = [engine.train_step(x[i : i + 16], y[i : i + 16])[0] for i in range(0, 64, 16)]
        engine.end_epoch()
        results[layout] = losses, engine.model.state_dict()
    np.testing.assert_allclose(results["channels_last"][0], results["nchw"][0], rtol=1e-5)
    for key, value in results["nchw"][1].items():
        np.testing.assert_allclose(results["channels_last"][1][key], value, rtol=1e-4, atol=1e-5)


class _FailingCompiled:
    """What torch.compile returns where the compiler is missing: fails at its first call."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, x: Any) -> Any:
        self.module(x)  # draws from torch's generator, as tracing would
        raise RuntimeError("InductorError: no C++ compiler found\nlong traceback text")

    def train(self, mode: bool = True) -> Any:
        return self.module.train(mode)


def _fit(compile_model: bool, **kwargs: Any) -> tuple[Any, Any]:
    model, loss, optimizer = _parts(model="small")  # small: with Dropout, so the RNG state matters
    x, y = _data(64)
    history = fit(model, loss, optimizer, (x, y), epochs=2, batch_size=16, seed=1, backend="torch",
                  compile_model=compile_model, **kwargs)  # fmt: skip
    return model, history


def test_compile_falls_back_to_eager_with_one_line_and_the_same_result(torch, monkeypatch, capsys):
    eager_model, eager_history = _fit(False, verbose=False)
    monkeypatch.setattr(torch, "compile", _FailingCompiled)
    model, history = _fit(True, verbose=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "cnnlab: --compile: torch.compile failed (RuntimeError: InductorError: no C++ compiler found); "
        "training without compiling"
    ]
    for key, value in eager_model.state_dict().items():  # same weights, RNG state restored too
        assert model.state_dict()[key].tobytes() == value.tobytes(), key
    assert [r["train_loss"] for r in history.rows] == [r["train_loss"] for r in eager_history.rows]


def test_compile_uses_the_compiled_module_and_shows_its_seconds_on_the_progress_line(
    torch, monkeypatch, capsys
):
    calls: list[tuple[int, ...]] = []

    class Compiled:  # torch.compile's stand-in: records what it runs
        def __init__(self, module: Any) -> None:
            self.module = module

        def __call__(self, x: Any) -> Any:
            calls.append(tuple(x.shape))
            return self.module(x)

        def train(self, mode: bool = True) -> Any:
            return self.module.train(mode)

    monkeypatch.setattr(torch, "compile", Compiled)
    _fit(True, verbose=True)
    out = capsys.readouterr().out.strip().splitlines()
    assert calls == [(16, 1, 8, 8)] * 8  # every training step of the 2 epochs ran the compiled module
    assert len(out) == 2
    assert " torch.compile " in out[0] and out[0].endswith("s")  # the first step compiled
    assert "torch.compile" not in out[1]  # no new batch shape in epoch 2: nothing compiled


def test_compile_is_a_train_switch_and_refused_without_the_torch_backend(torch, tmp_path, monkeypatch):
    from cnnlab.cli.main import main

    seen: list[bool] = []
    real = TorchEngine.__init__

    def spy(self: Any, *args: Any, compile_model: bool = False, **kwargs: Any) -> None:
        seen.append(compile_model)
        real(self, *args, compile_model=False, **kwargs)  # no 30 s compile in a unit test

    monkeypatch.setattr(TorchEngine, "__init__", spy)
    tiny = Path(__file__).parents[1] / "reliability" / "tiny.json"
    out = tmp_path / "run"
    argv = ["train", "--model", str(tiny), "--epochs", "1", "--backend", "torch", "--compile"]
    assert main([*argv, "--quiet", "--no-plots", "--out", str(out)]) == 0
    assert seen == [True]
    assert json.loads((out / "config.json").read_text())["compile"] is True
    with pytest.raises(ValueError, match=r"`compile` must be false unless --backend torch"):
        TrainConfig(compile=True).validate()
    model, loss, optimizer = _parts()
    with pytest.raises(ValueError, match="compile_model"):
        make_engine("numpy", model, loss, optimizer, seed=0, device="cpu", batch_size=8, compile_model=True)
