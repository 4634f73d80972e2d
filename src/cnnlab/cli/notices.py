"""What the CLI prints besides results: whole error messages, one-line notices, no raw warnings.

- ``error_lines``: an exception's whole message, first line as the summary, the rest indented
  (a missing dataset's searched folders and download advice, a YAML error's file and line).
- ``cli_warnings``: inside it, every Python warning (a skipped ``.txt`` file, Pillow's
  decompression-bomb warning, a NumPy ``RuntimeWarning``) becomes one line on stderr,
  ``cnnlab COMMAND: warning: ...``, printed once: no source lines, no file paths of cnnlab's code.
- ``note``: a one-line notice of what the command did for the user (e.g. resized images).
- ``quiet_broken_pipe``: ``cnnlab evaluate RUN | head -1`` ends without a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

#: Exit status after the reader of stdout went away (128 + SIGPIPE, as a shell reports it).
BROKEN_PIPE_STATUS = 141

_command = ["cnnlab"]  # the running command's prefix, for note()


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(str(text).split())


def error_lines(prefix: str, exc: BaseException) -> list[str]:
    """The lines that report ``exc``: ``PREFIX: error: first line``, then the rest indented.

    Example:
        >>> error_lines("cnnlab train", ValueError("no files.\\nLooked in:\\n  - /data"))
        ['cnnlab train: error: no files.', '  Looked in:', '    - /data']
    """
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0]).strip()
    lines = [line.rstrip() for line in text.splitlines() if line.strip()] or [type(exc).__name__]
    return [f"{prefix}: error: {lines[0]}"] + [f"  {line}" for line in lines[1:]]


def note(text: str, file: TextIO | None = None) -> None:
    """Print one notice line, ``cnnlab COMMAND: note: text``, on stderr."""
    print(f"{_command[0]}: note: {one_line(text)}", file=file or sys.stderr, flush=True)


@contextmanager
def cli_warnings(prefix: str) -> Iterator[None]:
    """Show every warning raised inside as one line ``PREFIX: warning: message``, once each.

    Warnings Python hides by default (DeprecationWarning and the like, meant for developers)
    stay hidden, also under test runners that show them, unless ``-W``/``PYTHONWARNINGS`` asks.
    Categories other than plain UserWarning are named at the end of the line.
    """
    seen: set[str] = set()

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = one_line(message)
        if category is not UserWarning:
            text += f" ({category.__name__})"
        if text not in seen:
            seen.add(text)
            print(f"{prefix}: warning: {text}", file=sys.stderr, flush=True)

    previous = _command[0]
    _command[0] = prefix
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            if not sys.warnoptions:  # no -W / PYTHONWARNINGS: what Python hides stays hidden
                for category in (
                    DeprecationWarning,
                    PendingDeprecationWarning,
                    ImportWarning,
                    ResourceWarning,
                ):
                    warnings.filterwarnings("ignore", category=category)
            yield
    finally:
        _command[0] = previous


def quiet_broken_pipe() -> int:
    """After a BrokenPipeError on stdout: point stdout at /dev/null (so the interpreter's final
    flush cannot complain) and return the exit status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout without a file descriptor (tests)
        pass
    return BROKEN_PIPE_STATUS
