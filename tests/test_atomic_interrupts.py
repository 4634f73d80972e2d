"""``cnnlab.atomic.interrupts_deferred``: a Ctrl-C waits for the write; a second one does not."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnlab.atomic import atomic_write, interrupts_deferred


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl-C handler (pytest may run with SIGINT ignored, as a background job)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_inside_a_write_is_raised_once_the_file_is_in_place(
    tmp_path: Path, default_sigint: None
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def write(f: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # delivered now: recorded, not raised here
        f.write(b"new")  # type: ignore[attr-defined]

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_second_ctrl_c_interrupts_the_write_and_keeps_the_old_file(
    tmp_path: Path, default_sigint: None
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def write(f: object) -> None:
        f.write(b"half")  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # the user insists
        raise AssertionError("not reached")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, write)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_other_handlers_and_other_threads_are_left_alone(default_sigint: None) -> None:
    seen: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    with interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
    assert seen == [signal.SIGINT]  # the user's handler ran at once
    signal.signal(signal.SIGINT, signal.default_int_handler)
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            with interrupts_deferred():  # signal.signal would raise ValueError off the main thread
                pass
        except BaseException as exc:  # pragma: no cover - the assertion shows it
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert errors == []
