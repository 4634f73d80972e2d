"""The run-folder lock: one holder at a time, named by PID; a dead holder's lock is taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnnlab.train.runs.files import LOCK_FILE
from cnnlab.train.runs.runlock import RunFolderLocked, acquire, locked, release

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}


def other_process_acquires(folder: Path) -> subprocess.CompletedProcess[str]:
    """Try to lock ``folder`` from another process; it prints OK or the error."""
    code = textwrap.dedent(
        f"""
        from cnnlab.train.runs.runlock import acquire, release
        try:
            release(acquire({str(folder)!r}, notice=lambda t: print("NOTICE", t)))
        except Exception as exc:
            print(type(exc).__name__, exc)
        else:
            print("OK")
        """
    )
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_file_names_the_holder_and_goes_on_release(tmp_path: Path) -> None:
    lock = acquire(tmp_path)
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    release(lock)
    assert not (tmp_path / LOCK_FILE).exists()


def test_another_process_is_refused_with_folder_and_pid(tmp_path: Path) -> None:
    with locked(tmp_path):
        result = other_process_acquires(tmp_path)
    assert result.stdout.startswith(
        f"RunFolderLocked {tmp_path} is in use by another cnnlab run (PID {os.getpid()}): "
    ), result.stdout + result.stderr
    assert "choose another --out" in result.stdout
    assert other_process_acquires(tmp_path).stdout.strip() == "OK"  # released on leaving the block


def test_a_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with locked(tmp_path), pytest.raises(RunFolderLocked, match=r"this very process"):
        acquire(tmp_path)


def test_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), locked(tmp_path):
        raise KeyboardInterrupt
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_dead_holders_lock_is_taken_over_with_a_notice(tmp_path: Path) -> None:
    pid = dead_pid()
    (tmp_path / LOCK_FILE).write_text(f"{pid}\n")  # left by a process that was killed
    notices: list[str] = []
    lock = acquire(tmp_path, notice=notices.append)
    assert notices == [f"cnnlab: taking over the stale lock of {tmp_path}: its holder, PID {pid}, has ended"]
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    release(lock)


def test_a_killed_holders_lock_is_taken_over_by_another_process(tmp_path: Path) -> None:
    # The holder really holds the lock (flock included), then dies by SIGKILL: no cleanup ran.
    code = (
        f"from cnnlab.train.runs.runlock import acquire; import os; acquire({str(tmp_path)!r}); os._exit(0)"
    )
    holder = subprocess.run([sys.executable, "-c", code], env=ENV, timeout=60)
    assert holder.returncode == 0
    pid = int((tmp_path / LOCK_FILE).read_text())
    result = other_process_acquires(tmp_path)
    assert result.stdout.splitlines() == [
        f"NOTICE cnnlab: taking over the stale lock of {tmp_path}: its holder, PID {pid}, has ended",
        "OK",
    ], result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="flock: POSIX")
def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path: Path) -> None:
    # PID 1 is alive, but holds no flock on this file: the process that wrote it has ended.
    (tmp_path / LOCK_FILE).write_text("1\n")
    notices: list[str] = []
    release(acquire(tmp_path, notice=notices.append))
    assert notices == [f"cnnlab: taking over the stale lock of {tmp_path}: its holder, PID 1, has ended"]


def test_an_empty_lock_file_is_waited_for_then_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty file is a lock whose creator has not written its PID yet: wait, then take it.
    import cnnlab.train.runs.runlock as runlock

    monkeypatch.setattr(runlock, "CREATING_GRACE_S", 0.2)
    (tmp_path / LOCK_FILE).write_text("")
    notices: list[str] = []
    release(acquire(tmp_path, notice=notices.append))
    assert notices == [f"cnnlab: taking over the stale lock of {tmp_path}: the run that created it has ended"]
