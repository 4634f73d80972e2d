"""torchrun with 2 CPU processes (gloo) trains the same weights as one process.

The model has no BatchNorm: under DDP, BatchNorm normalizes with each process's shard
statistics, so only models without it are expected to match single-process training.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.io import load
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.run import train_run

TINY = {
    "layers": [
        {"Conv2D": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        "ReLU",
        {"MaxPool2D": {"kernel_size": 2}},
        "Flatten",
        {"Dense": {"out_features": 16}},
        "Tanh",
        {"Dense": {"out_features": "num_classes"}},
    ]
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_processes_match_one_process(torch, tmp_path: Path) -> None:
    if not torch.distributed.is_available():
        pytest.skip("this PyTorch build has no torch.distributed")
    arch = tmp_path / "tiny.json"
    arch.write_text(json.dumps(TINY))
    # 1293 training images in batches of 32: the last batch (13) splits unevenly, 7 + 6.
    options = {"model": str(arch), "epochs": 2, "optimizer": "sgd", "lr": 0.05, "augment": "shift"}
    single = train_run(TrainConfig(**options, backend="torch", out=str(tmp_path / "single")), verbose=False)

    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "-m", "cnnlab", "train", "--backend", "torch", "--model", str(arch), "--epochs", "2",
        "--optimizer", "sgd", "--lr", "0.05", "--augment", "shift",
        "--out", str(out), "--no-plots", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    # A new session, so a hang kills torchrun's worker processes too, not only torchrun.
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun did not finish in 120 s:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("test accuracy") == 1  # only rank 0 reports

    expected = load(single.run_dir / "model.npz").state_dict()
    got = load(out / "model.npz").state_dict()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(single.test_accuracy, abs=2 / 360)
