"""Kill `cnnlab train` with SIGKILL (and Ctrl-C) at many points, resume, and get the same weights.

Each run is a subprocess `python -m cnnlab train` on the embedded digits with a tiny model.
CNNLAB_TEST_SLOW_CHECKPOINT widens the window between writing and renaming a checkpoint,
so kills can be aimed inside a write (a temp file present) as well as at random times;
CNNLAB_TEST_KILL_CHECKPOINT makes the process kill itself at a chosen point of a write.
The fault-injection test does both under the NumPy and the torch backend, with early
stopping and the plateau schedule on (docs/reliability.md has its figures).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoint_faults import KILL_ENV, SLOW_ENV, fault_env
from cnnlab.train.runs.files import CHECKPOINT_FILE
from sigint_child import cnnlab_command

TINY = Path(__file__).with_name("tiny.json")
EPOCHS = 14  # 8 kills, each after >= 1 more saved epoch: leave slack for a slow poll
ARGS = [
    "train", "--model", str(TINY), "--epochs", str(EPOCHS), "--batch-size", "64",
    "--augment", "shift", "--optimizer", "adam", "--schedule", "cosine", "--seed", "3", "--quiet",
]  # fmt: skip
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start(args: list[str], slow: float = 0.0) -> subprocess.Popen[bytes]:
    env = fault_env(ENV, slow=slow) if slow else ENV
    return subprocess.Popen(  # cnnlab_command: takes the Ctrl-C test's SIGINT (sigint_child.py)
        cnnlab_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def weights(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k != "__cnnlab__"}


def assert_bit_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


def checkpoint_epoch(run_dir: Path) -> int:
    if not (run_dir / CHECKPOINT_FILE).exists():
        return 0
    with np.load(run_dir / CHECKPOINT_FILE, allow_pickle=False) as npz:
        return int(json.loads(npz["__checkpoint__"].tobytes())["epoch"])


def temp_files(run_dir: Path) -> list[Path]:
    return list(run_dir.glob(f".{CHECKPOINT_FILE}.*.tmp")) if run_dir.exists() else []


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
        assert runs < 20, f"training finished before enough kills landed: {kills} at epochs {saved_epochs}"
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
    wait_for(lambda: (out / CHECKPOINT_FILE).exists(), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("training finished before the interrupt landed")
    message = stderr.decode().strip()
    assert proc.returncode == 130, message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert f"Resume with: cnnlab train --resume {out}" in message
    with np.load(out / CHECKPOINT_FILE, allow_pickle=False) as ckpt:
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


# ---- fault injection under both backends ----------------------------------------------------
FAULT_BASE = [
    "train", "--model", str(TINY), "--epochs", "12", "--batch-size", "32", "--augment", "shift",
    "--optimizer", "adam", "--schedule", "plateau", "--early-stopping", "4", "--quiet", "--no-plots",
]  # fmt: skip
# Per backend a seed and rate at which, on the digits, the plateau schedule lowers the rate
# and early stopping ends the run before epoch 12 (so their saved state matters).
FAULT_ARGS = {
    "numpy": [*FAULT_BASE, "--seed", "2", "--lr", "0.05"],
    "torch": [*FAULT_BASE, "--backend", "torch", "--seed", "3", "--lr", "0.1"],
}
KILLS = {"numpy": 12, "torch": 8}  # >= 20 in all; a torch process starts slower (its import)
KINDS = ("anytime", "training", "slow-write", "hook:half", "hook:written", "hook:saved")


def outcome(run_dir: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, float]]:
    """History without the timings, the weights, and the test metrics of a finished run."""
    lines = (run_dir / "history.csv").read_text().strip().splitlines()
    rows = [",".join(line.split(",")[:-1]) for line in lines]  # drop `seconds`, the last column
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return rows, weights(run_dir), {k: metrics[k] for k in ("test_accuracy", "test_loss")}


def where(run_dir: Path, stale: set[Path], last_epoch: int) -> str:
    """Where a kill landed, as the run folder shows it (``stale``: temp files from earlier kills)."""
    if set(temp_files(run_dir)) - stale:
        return "inside a checkpoint write"
    epoch = checkpoint_epoch(run_dir)
    if epoch == last_epoch:
        return "after the last epoch (final files, test evaluation)"
    return f"training epoch {epoch + 1}" if epoch else "start-up or epoch 1"


HOOK_SPOTS = {
    "half": "inside a checkpoint write (half the bytes written)",
    "written": "inside a checkpoint write (all written, not yet renamed)",
    "saved": "right after a checkpoint was renamed into place",
}


def one_try(
    args: list[str], out: Path, kind: str, rng: np.random.Generator, span: float, last: int
) -> str | None:
    """Start `cnnlab train`, aim a SIGKILL as ``kind`` says; where it landed, or None if the
    run finished first (then it must have succeeded)."""
    env, saved, stale = fault_env(ENV), checkpoint_epoch(out), set(temp_files(out))
    if kind.startswith("hook:"):  # the process kills itself inside a checkpoint write
        env[KILL_ENV] = f"{saved + int(rng.integers(1, 3))}:{kind[5:]}"
    if kind == "slow-write":
        env[SLOW_ENV] = "0.1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    landed = None
    if kind == "anytime":  # a random moment of the process's life: start-up, training, the end
        time.sleep(rng.uniform(0.0, span))
    elif kind == "training":  # a random moment of the epoch after the next saved one
        wait_for(lambda: checkpoint_epoch(out) > saved, proc, timeout=120)
        time.sleep(rng.uniform(0.0, 0.3))
    elif kind == "slow-write":  # while a new temp checkpoint file exists
        wait_for(lambda: set(temp_files(out)) - stale, proc, timeout=120)
    if kind in ("anytime", "training", "slow-write") and proc.poll() is None:
        landed = where(out, stale, last)
        proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == -signal.SIGKILL:
        if landed is None:  # the hook: "<epoch>:<stage>"
            epoch, stage = env[KILL_ENV].split(":")
            landed = f"{HOOK_SPOTS[stage]}, epoch {epoch}"
        return landed
    assert proc.returncode == 0, stderr.decode()
    return None


def campaign(backend: str, root: Path, seed: int) -> dict[str, Any]:
    """Kill and resume one backend's run until KILLS[backend] kills landed; every chain of
    kills and resumes must end exactly as the uninterrupted run."""
    rng = np.random.default_rng(seed)
    args = FAULT_ARGS[backend]
    start_time = time.monotonic()
    reference = subprocess.run(
        [sys.executable, "-m", "cnnlab", *args, "--out", str(root / "reference")],
        env=ENV, capture_output=True, timeout=300,
    )  # fmt: skip
    span = time.monotonic() - start_time
    assert reference.returncode == 0, reference.stderr.decode()
    expected = outcome(root / "reference")
    epochs, rates = len(expected[0]) - 1, {row.split(",")[5] for row in expected[0][1:]}
    assert epochs < 12 and len(rates) > 1, f"{backend}: early stopping or the plateau schedule did not act"
    landed: list[str] = []
    chains = processes = 0
    queue: list[str] = []  # the kinds of kill, each equally often, in a seeded random order
    while len(landed) < KILLS[backend]:
        chains += 1
        out, chain_kills = (
            root / f"chain-{chains}",
            min(int(rng.integers(3, 6)), KILLS[backend] - len(landed)),
        )
        for attempt in range(40):
            processes += 1
            fresh = not (out / "config.json").exists()  # a kill before it was written: start again
            run_args = (
                [*args, "--out", str(out)]
                if fresh
                else ["train", "--resume", str(out), "--quiet", "--no-plots"]
            )
            if attempt < chain_kills and not queue:
                queue = [KINDS[i] for i in rng.permutation(len(KINDS))]
            kind = queue.pop() if attempt < chain_kills else "none"
            spot = one_try(run_args, out, kind, rng, span, epochs)
            if spot is None:
                break
            landed.append(f"{kind}: {spot}")
        got = outcome(out)
        assert got[0] == expected[0], f"{backend} chain {chains}: history differs"
        assert_bit_identical(got[1], expected[1])
        assert got[2] == expected[2]
        assert not temp_files(out)
    return {"backend": backend, "kills": landed, "chains": chains, "processes": processes,
            "seconds": time.monotonic() - start_time}  # fmt: skip


def test_fault_injection_under_both_backends(tmp_path: Path, torch: Any) -> None:
    """>= 20 SIGKILLs at random moments and inside checkpoint writes, with early stopping and
    the plateau schedule on, under the NumPy and the torch backend (in parallel): every
    resumed run ends with the uninterrupted run's history, weights and test metrics."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(campaign, b, tmp_path / b, seed) for seed, b in enumerate(FAULT_ARGS, 20)]
        results = [job.result() for job in jobs]
    kills = [k for r in results for k in r["kills"]]
    assert len(kills) >= 20
    in_write = [k for k in kills if "checkpoint write" in k]
    assert len(in_write) >= 6 and len(kills) - len(in_write) >= 4, kills
    for r in results:
        print(f"{r['backend']}: {len(r['kills'])} kills in {r['chains']} chains, {r['processes']} processes, "
              f"{r['seconds']:.1f} s")  # fmt: skip
        for k in r["kills"]:
            print("   ", k)
    seconds = time.monotonic() - start
    print(f"total: {len(kills)} kills ({len(in_write)} inside a checkpoint write), {seconds:.1f} s")
