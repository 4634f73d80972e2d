"""Names stated once and read everywhere (issue 24): schedules, backends, the main process."""

from __future__ import annotations

import pytest

from cnnlab.layers.dense import Dense
from cnnlab.optim import make_optimizer
from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau, StepLR
from cnnlab.train.loop import engines
from cnnlab.train.loop.distributed import is_main_process
from cnnlab.train.loop.engines import torch_engine
from cnnlab.train.runs.config import FLAGS, SCHEDULES, TrainConfig
from cnnlab.train.runs.run import loss_optimizer_schedule


@pytest.mark.parametrize(
    ("name", "kind"),
    [("none", type(None)), ("cosine", CosineWarmup), ("step", StepLR), ("plateau", ReduceLROnPlateau)],
)
def test_every_schedule_name_builds_its_schedule(name: str, kind: type) -> None:
    config = TrainConfig(schedule=name, epochs=6)
    _, _, schedule = loss_optimizer_schedule(config, Dense(2, 2, rng=0))
    assert isinstance(schedule, kind)


def test_schedule_names_come_from_the_table() -> None:
    assert list(SCHEDULES) == ["none", "cosine", "step", "plateau"]
    help_text = FLAGS["--schedule"][2]
    assert all(name in help_text for name in SCHEDULES)
    with pytest.raises(ValueError, match="cosine"):
        TrainConfig(schedule="linear").validate()
    optimizer = make_optimizer("sgd", Dense(2, 2, rng=0).parameters(), lr=0.1)
    assert SCHEDULES["step"](optimizer, 9).step_size == 3


def test_backend_and_device_names_are_one_table() -> None:
    assert torch_engine.DEVICES is engines.DEVICES
    assert list(engines.BACKENDS) == ["numpy", "torch"] and engines.DEVICES == ("cpu", "cuda")
    assert all(name in FLAGS["--backend"][2] for name in engines.BACKENDS)
    assert all(name in FLAGS["--device"][2] for name in engines.DEVICES)
    with pytest.raises(ValueError, match="cpu, or cuda with --backend torch"):
        TrainConfig(device="tpu").validate()


def test_main_process_is_one_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not is_main_process("torch") and not is_main_process()
    assert is_main_process("numpy")  # one process: always the main one
    monkeypatch.setenv("RANK", "0")
    assert is_main_process("torch")
