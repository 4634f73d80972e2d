"""Download a file safely: checksum-verified, atomic, with a progress bar.

The file is streamed into a temporary file in the destination folder, hashed on the way,
verified, fsync'ed and only then renamed into place with ``os.replace``, so an interrupted or
corrupted download never leaves a file that looks complete. rich draws the progress bar when
installed; otherwise a plain percentage goes to stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20

#: Environment variable that replaces the official base URL of every dataset (a mirror, or a
#: ``file://`` folder holding the same file names).
MIRROR_ENV = "CNNLAB_MIRROR"


def resolve_url(base_url: str, filename: str) -> str:
    """``$CNNLAB_MIRROR/filename`` when the variable is set, else ``base_url/filename``."""
    base = os.environ.get(MIRROR_ENV) or base_url
    return base.rstrip("/") + "/" + filename


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    checksum: str | None,
    algorithm: str = "sha256",
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its ``algorithm`` hex digest.

    Args:
        url: http(s):// or file:// address.
        dest: final path; its folder is created.
        checksum: expected hex digest (None skips the check: only for tests and local files).
        algorithm: a ``hashlib`` name: "sha256", or "md5" where only an MD5 is published.
        progress: show a progress bar (rich if installed, else a stderr percentage).
        timeout: seconds to wait for the server.

    Returns:
        ``Path(dest)``.

    Raises:
        ValueError: the downloaded bytes do not match ``checksum`` (nothing is kept).
        OSError: the download failed (nothing is kept).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(dest.name, total, progress) as advance:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    advance(len(block))
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if checksum is not None and got != checksum.lower():
            raise ValueError(
                f"download of {url} failed its {algorithm} check: expected {checksum}, got {got}. "
                f"The partial file was deleted and nothing was saved to {dest}. Try again, or fetch "
                "the file by hand and pass its folder with --data-dir."
            )
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return dest


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _progress_bar(label: str, total: int | None, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
    except ImportError:
        yield _PlainProgress(label, total)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"downloading {label}", total=total)
        yield lambda n: bar.update(task, advance=n)


class _PlainProgress:
    """``downloading x.gz: 45%`` lines on stderr, one per 10%, for installs without rich."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.done, self.shown = label, total, 0, -10

    def __call__(self, n: int) -> None:
        self.done += n
        if self.total:
            percent = 100 * self.done // self.total
            if percent >= self.shown + 10:
                self.shown = percent - percent % 10
                print(f"downloading {self.label}: {percent}%", file=sys.stderr, flush=True)
