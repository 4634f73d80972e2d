"""Atomic file writes: a crash or a full disk never leaves a half-written file in place.

Write to a temp file in the same folder, flush, fsync, ``os.replace`` over the target, then
fsync the folder so the rename itself is durable. On any error the temp file is removed
and the previous file (if any) is untouched.

A failed write is re-raised as the same kind of ``OSError`` (same ``errno`` and
``strerror``) whose ``filename`` is the file the caller asked for, not the temp file:
``[Errno 28] No space left on device: 'RUN/report.html'``, and ``[Errno 2] No such file or
directory (the folder /nonexistent/d does not exist): '/nonexistent/d/m.npz'`` (issue 23).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
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


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(f)`` on a temp file next to ``path``, then atomically replace ``path``.

    Raises:
        OSError: the write failed (full disk, missing folder, no permission ...); the message
            names ``path``, and ``path`` is as it was.
    """
    path = Path(path)
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
