"""``cnnlab`` children that a test stops with Ctrl-C (SIGINT) start as a terminal's would.

A process started with SIGINT ignored passes that on to every child (POSIX keeps an ignored
signal ignored across exec), and Python installs its KeyboardInterrupt handler only where
SIGINT has its default action. pytest started as a background job of a non-interactive
shell (``python -m pytest &`` in a script, some CI runners, ``nohup``) runs that way, so a
child it spawns never sees the test's SIGINT: ``train`` ran to the end (exit 0, not 130) and
``cnnlab dashboard`` kept serving (issue 23 item 23: with ``-p randomly --randomly-seed=31337``
three Ctrl-C tests failed, and tests/reliability/test_kill_resume.py's skipped itself).

``cnnlab_command`` gives the child SIGINT's default action before it becomes ``python -m
cnnlab``: the process a user presses Ctrl-C in.
"""

from __future__ import annotations

import sys

#: Run by ``python -c``: SIGINT back to its default action, then exec the real command.
_RESET = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def cnnlab_command(*args: str) -> list[str]:
    """``[python, ..., -m, cnnlab, *args]`` whose process takes Ctrl-C (same pid after exec)."""
    return [sys.executable, "-c", _RESET, "-m", "cnnlab", *args]
