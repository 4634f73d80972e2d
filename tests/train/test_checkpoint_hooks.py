"""``checkpoint.WRITE_HOOKS``: empty in use; a hook sees each stage of a checkpoint write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.layers.dense import Dense
from cnnlab.train.loop import checkpoint
from cnnlab.train.loop.checkpoint import TrainState, load_checkpoint, save_checkpoint


def test_no_hook_is_installed_on_import() -> None:
    code = "import cnnlab.train.loop.checkpoint as c; print(len(c.WRITE_HOOKS))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_TEST_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_a_hook_sees_the_written_temp_file_then_the_saved_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Dense(3, 2, rng=0)
    path = tmp_path / "checkpoint.npz"
    seen: list[tuple[int, str, bool, bool]] = []

    def hook(epoch: int, stage: str, f: Any) -> None:
        # "written": the temp file holds every byte, the checkpoint is not in place yet
        size = f.tell() if f is not None else 0
        seen.append((epoch, stage, size > 0, path.exists()))

    monkeypatch.setattr(checkpoint, "WRITE_HOOKS", [hook])
    save_checkpoint(path, TrainState(epoch=1, history=[{"epoch": 1, "loss": 0.5}], model=model.state_dict()))
    assert seen == [(1, "written", True, False), (1, "saved", False, True)]
    state = load_checkpoint(path, Dense(3, 2, rng=1))
    assert state.epoch == 1
    np.testing.assert_array_equal(state.model["weight"], model.state_dict()["weight"])
