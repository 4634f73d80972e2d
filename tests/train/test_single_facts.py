"""Names stated once and read everywhere (issue 24): schedules, backends, the main process."""

from __future__ import annotations

import pytest

from cnnlab.layers.dense import Dense
from cnnlab.optim import make_optimizer
from cnnlab.optim.schedules import CosineWarmup, ReduceLROnPlateau, StepLR
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
