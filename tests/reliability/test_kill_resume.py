"""Kill `cnnlab train` with SIGKILL (and Ctrl-C) at many points, resume, and get the same weights.

Each run is a subprocess `python -m cnnlab train` on the embedded digits with a tiny model.
CNNLAB_TEST_SLOW_CHECKPOINT widens the window between writing and renaming a checkpoint,
so kills can be aimed inside a write (a temp file present) as well as at random times.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnnlab.train.checkpoint import CHECKPOINT_NAME, SLOW_ENV

TINY = Path(__file__).with_name("tiny.json")
EPOCHS = 10
ARGS = [
    "train", "--model", str(TINY), "--epochs", str(EPOCHS), "--batch-size", "64",
    "--augment", "shift", "--optimizer", "adam", "--schedule", "cosine", "--seed", "3", "--quiet",
]  # fmt: skip
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(args: list[str], slow: float = 0.0) -> subprocess.Popen[bytes]:
    env = {**ENV, SLOW_ENV: str(slow)} if slow else ENV
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def weights(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "__cnnlab__"}


def assert_bit_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


def checkpoint_epoch(run_dir: Path) -> int:
    if not (run_dir / CHECKPOINT_NAME).exists():
        return 0
    with np.load(run_dir / CHECKPOINT_NAME, allow_pickle=False) as npz:
        return int(json.loads(npz["__checkpoint__"].tobytes())["epoch"])


def temp_files(run_dir: Path) -> list[Path]:
    return list(run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp")) if run_dir.exists() else []


def wait_for(predicate: object, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    """Poll every 2 ms until ``predicate()`` is true (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("timed out waiting for the training process")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *ARGS, "--out", str(out)], env=ENV, capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return weights(out)


def test_sigkill_at_random_points_then_resume_is_bit_identical(
    tmp_path: Path, reference: dict[str, np.ndarray]
) -> None:
    rng = np.random.default_rng(8)
    out = tmp_path / "run"
    kills, kills_in_write, runs, saved_epochs = 0, 0, 0, []
    while kills < 8:
        runs += 1
        assert runs < 20, "training finished before enough kills landed"
        resumable = (out / "config.json").exists()
        args = [*ARGS, "--out", str(out)] if not resumable else ["train", "--resume", str(out), "--quiet"]
        proc = start(args, slow=0.15)
        if kills == 0:  # the first kill: a random moment of start-up / the first epoch
            time.sleep(rng.uniform(0.05, 0.6))
        else:  # later kills: once one more epoch is saved, in turn: inside the next checkpoint
            # write, at once (training the next epoch), or after a random 0-80 ms
            target = checkpoint_epoch(out) + 1
            wait_for(lambda target=target: checkpoint_epoch(out) >= target, proc)
            if kills % 3 == 1:
                wait_for(lambda: temp_files(out), proc)
            elif kills % 3 == 0:
                time.sleep(rng.uniform(0.0, 0.08))
        if proc.poll() is not None:
            continue  # it finished (or crashed) before the kill: checked below
        in_write = bool(temp_files(out))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        kills_in_write += in_write
        saved_epochs.append(checkpoint_epoch(out))
    assert kills_in_write >= 2, "too few kills landed inside a checkpoint write"
    assert kills - kills_in_write >= 1, "no kill landed outside a checkpoint write"
    assert saved_epochs == sorted(saved_epochs) and 1 <= saved_epochs[-1] < EPOCHS, saved_epochs
    rows_before = (out / "history.csv").read_text().splitlines()[: saved_epochs[-1] + 1]

    # Resume to the end; the stale temp files are cleaned up, the weights match exactly.
    final = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(out), "--quiet"],
        env=ENV, capture_output=True, timeout=120,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr.decode()
    assert not temp_files(out)
    assert_bit_identical(weights(out), reference)
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == EPOCHS + 1
    assert rows[: len(rows_before)] == rows_before  # resumed (same timings), not restarted
    print(
        f"{kills} SIGKILLs ({kills_in_write} inside a checkpoint write, {kills - kills_in_write} during "
        f"start-up or training), {runs} processes, "
        f"checkpointed epochs at the kills: {saved_epochs}; final weights bit-identical"
    )


def test_ctrl_c_saves_the_last_epoch_and_says_how_to_resume(
    tmp_path: Path, reference: dict[str, np.ndarray]
) -> None:
    out = tmp_path / "run"
    proc = start([*ARGS, "--out", str(out)], slow=0.15)
    wait_for(lambda: (out / CHECKPOINT_NAME).exists(), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt landed")
    message = stderr.decode().strip()
    assert proc.returncode == 130, message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert f"Resume with: cnnlab train --resume {out}" in message
    with np.load(out / CHECKPOINT_NAME, allow_pickle=False) as ckpt:
        saved = {k[len("model/") :]: ckpt[k] for k in ckpt.files if k.startswith("model/")}
    assert_bit_identical(weights(out), saved)  # model.npz = the last finished epoch

    resumed = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(out), "--quiet"],
        env=ENV, capture_output=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_bit_identical(weights(out), reference)


def test_resume_refuses_changed_options(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"lr": 0.002, "out": str(tmp_path)}))
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(tmp_path), "--lr", "0.1"],
        env=ENV, capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (
        "cnnlab train: error: --resume continues the saved config unchanged; "
        "drop --lr 0.1 (the run has 0.002)"
    )
