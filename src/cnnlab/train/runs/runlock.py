"""One writer per run folder: a lock file with the writer's PID, taken over when its writer died.

The lock is ``RUN_DIR/.cnnlab.lock``. It is created atomically (``os.open`` with
``O_CREAT | O_EXCL``: of two runs, exactly one creates it), and its writer holds an
``fcntl.flock`` on it for as long as it lives. The kernel drops that flock when the process
ends, however it ends (``kill -9`` included), so a lock file whose flock can be taken is
stale even if its PID has been reused since; a new run takes it over with a one-line notice.
The writer removes the file when it is done (``release``, or leaving ``locked``), on every
exit path. Without ``fcntl`` (Windows) a lock is stale when its PID is no longer running.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.train.runs.files import LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: How long a lock file may stay empty (its creator between O_EXCL and writing its PID).
CREATING_GRACE_S = 2.0


class RunFolderLocked(CnnlabError):
    """Another live process holds the run folder's lock."""


@dataclass
class RunLock:
    """A held lock: ``path`` is the lock file, ``fd`` its open descriptor (holding the flock)."""

    path: Path
    fd: int


def _notice(text: str) -> None:
    print(text, file=sys.stderr)


def _flock(fd: int, wait: bool) -> bool:
    """Take the exclusive flock on ``fd``; False if another process holds it (``wait=False``)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _holder_pid(fd: int, pid: int | None) -> int | None:
    """The holder's PID; a holder that has the flock but not yet written its PID gets a moment."""
    deadline = time.monotonic() + CREATING_GRACE_S
    while pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
        pid = _read_pid(fd)
    return pid


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    os.fsync(fd)


def _take(fd: int, pid: int | None) -> bool:
    """Take the flock of an existing lock file; False while its holder lives."""
    if fcntl is not None:
        return _flock(fd, wait=False)
    return pid is None or not _pid_alive(pid)


def _in_use(folder: Path, pid: int | None) -> RunFolderLocked:
    holder = f"PID {pid}" if pid is not None else "a process that is starting"
    if pid == os.getpid():
        holder += ", this very process"
    return RunFolderLocked(
        f"{folder} is in use by another cnnlab run ({holder}): two runs writing one folder would "
        f"mix their files. Wait for that run to finish, or choose another --out. (Lock file: "
        f"{folder / LOCK_FILE})"
    )


def check_free(folder: str | os.PathLike[str]) -> None:
    """Raise ``RunFolderLocked`` if a live process holds ``folder``'s lock (takes nothing over)."""
    folder = Path(folder)
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        pid = _read_pid(fd)
        if not _take(fd, pid):
            raise _in_use(folder, _holder_pid(fd, pid))
    finally:
        os.close(fd)  # drops the flock taken to look


def acquire(folder: str | os.PathLike[str], notice: Callable[[str], None] = _notice) -> RunLock:
    """Lock ``folder`` (which must exist) for this process.

    Raises:
        RunFolderLocked: a live process holds it (the message names the folder and its PID).
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    empty_since: float | None = None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:  # ours: hold the flock, then say who we are
            _flock(fd, wait=True)  # waits only while another run looks at the empty file
            _write_pid(fd)
            return RunLock(path, fd)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # released in between: try to create it again
            continue
        pid = _read_pid(fd)
        if not _take(fd, pid):
            pid = _holder_pid(fd, pid)
            os.close(fd)
            raise _in_use(folder, pid)
        if not _same_file(fd, path):  # removed or replaced by its holder meanwhile
            os.close(fd)
            continue
        pid = _read_pid(fd)
        if pid is None:  # just created: its writer has not written its PID yet
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since < CREATING_GRACE_S:
                os.close(fd)
                time.sleep(0.05)
                continue
        _write_pid(fd)
        who = f"its holder, PID {pid}," if pid is not None else "the run that created it"
        notice(f"cnnlab: taking over the stale lock of {folder}: {who} has ended")
        return RunLock(path, fd)


def release(lock: RunLock) -> None:
    """Remove the lock file (if it is still ours) and drop the flock."""
    try:
        if _same_file(lock.fd, lock.path):
            os.unlink(lock.path)  # before closing: a waiting run then finds no file, or a new one
    finally:
        os.close(lock.fd)


@contextmanager
def locked(folder: str | os.PathLike[str], notice: Callable[[str], None] = _notice) -> Iterator[RunLock]:
    """``acquire`` on entry, ``release`` on every exit (errors and Ctrl-C included)."""
    lock = acquire(folder, notice)
    try:
        yield lock
    finally:
        release(lock)
