"""Checkpoint fault injection for the tests that stop a training process on purpose.

``cnnlab.train.loop.checkpoint.WRITE_HOOKS`` is empty in use. A test that starts
``python -m cnnlab train`` with ``fault_env(...)`` puts ``tests/checkpoint_faults_site/`` first
on the child's ``PYTHONPATH``; Python runs its ``sitecustomize.py`` at start-up, which adds
``inject`` to the hooks when one of these variables is set:

- ``CNNLAB_TEST_SLOW_CHECKPOINT=<seconds>``: sleep between writing a checkpoint's temp file
  and renaming it (a window in which a kill lands mid-write);
- ``CNNLAB_TEST_KILL_CHECKPOINT=<epoch>:<stage>``: SIGKILL the process inside that epoch's
  checkpoint write: ``half`` leaves the temp file cut to half its bytes (as a kill halfway
  through writing it would), ``written`` all bytes written but not yet renamed, ``saved`` the
  new checkpoint in place.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SLOW_ENV = "CNNLAB_TEST_SLOW_CHECKPOINT"
KILL_ENV = "CNNLAB_TEST_KILL_CHECKPOINT"
KILL_STAGES = ("half", "written", "saved")
#: The folder whose sitecustomize.py installs ``inject`` in a child process.
SITE = Path(__file__).resolve().parent / "checkpoint_faults_site"


def fault_env(env: Mapping[str, str], slow: float | None = None, kill: str | None = None) -> dict[str, str]:
    """``env`` for a child process with the injector installed (and SLOW/KILL set when given)."""
    new = dict(env)
    new["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), new.get("PYTHONPATH", "")) if p)
    if slow is not None:
        new[SLOW_ENV] = str(slow)
    if kill is not None:
        new[KILL_ENV] = kill
    return new


def inject(epoch: int, stage: str, f: Any) -> None:
    """The hook: sleep and/or kill this process as ``SLOW_ENV`` and ``KILL_ENV`` say."""
    if stage == "written":
        pause = os.environ.get(SLOW_ENV)
        if pause:
            time.sleep(float(pause))
        _kill_at(epoch, "half", f)
        _kill_at(epoch, "written", f)
    else:
        _kill_at(epoch, stage, f)


def _kill_at(epoch: int, stage: str, f: Any) -> None:
    if os.environ.get(KILL_ENV) != f"{epoch}:{stage}":
        return
    if stage == "half":
        f.flush()
        os.ftruncate(f.fileno(), f.tell() // 2)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
