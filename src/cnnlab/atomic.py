"""Atomic file writes: a crash or a full disk never leaves a half-written file in place.

Write to a temp file in the same folder, flush, fsync, ``os.replace`` over the target, then
fsync the folder so the rename itself is durable. On any error the temp file is removed
and the previous file (if any) is untouched.

A Ctrl-C during a write waits until the write is done (then interrupts as usual): an
interrupt inside ``np.savez`` left a half-built ``zipfile.ZipFile`` whose ``__del__`` printed a
traceback after cnnlab's one-line message, and a finished write loses nothing. A second
Ctrl-C interrupts at once. Only in the main thread, and only where SIGINT has Python's
default handler (a server's or a user's own handler is left alone).

A failed write is re-raised as the same kind of ``OSError`` (same ``errno`` and
``strerror``) whose ``filename`` is the file the caller asked for, not the temp file:
``[Errno 28] No space left on device: 'RUN/report.html'``, and ``[Errno 2] No such file or
directory (the folder /nonexistent/d does not exist): '/nonexistent/d/m.npz'`` (issue 23).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` (same class, errno and strerror) naming ``path`` as its filename, not the temp file."""
    if exc.errno is None:  # raised without an errno (e.g. by a writer callback)
        return type(exc)(f"cannot write {path}: {exc}")
    strerror = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError) and not path.parent.is_dir():
        strerror = f"{strerror} (the folder {path.parent} does not exist)"
    return type(exc)(exc.errno, strerror, str(path))


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C inside the block is raised when it ends; a second one is raised at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending: list[int] = []

    def later(signum: int, frame: object) -> None:
        if pending:  # the second Ctrl-C: the user insists
            raise KeyboardInterrupt
        pending.append(signum)

    signal.signal(signal.SIGINT, later)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(f)`` on a temp file next to ``path``, then atomically replace ``path``.

    Raises:
        OSError: the write failed (full disk, missing folder, no permission ...); the message
            names ``path``, and ``path`` is as it was.
        KeyboardInterrupt: Ctrl-C during the write, raised once ``path`` is written (a
            second Ctrl-C: at once, ``path`` as it was).
    """
    with interrupts_deferred():
        _atomic_write(Path(path), write)


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # os.open with mode 0o666 (not mkstemp's 0o600), so the umask applies as for open().
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` (UTF-8, newlines as given) to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
