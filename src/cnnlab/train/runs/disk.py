"""Free disk space, checked before a run writes its large files (issue 23 item 1).

A run writes ``model.npz`` (the weights) and, every epoch, ``checkpoint.npz`` (the weights
and the optimizer's per-weight buffers) through a temporary file that lives beside the old
one until the atomic replace; then plots and the report. On a disk without room for them,
training would fail after its first epoch, or leave no report: ``check_disk_space`` refuses
such a run before anything is written, giving the free and the needed bytes.

The estimate, for P bytes of weights and B optimizer buffers per weight (Adam: 2)::

    model.npz (P) + checkpoint.npz ((1 + B) P) + its temporary copy ((1 + B) P) + 16 MiB
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

#: Room kept for plots/, report.html, history.csv, metrics.json and config.json.
PLOTS_MARGIN = 16 * 2**20


def needed_bytes(model: Any, optimizer: Any) -> tuple[int, dict[str, int]]:
    """The bytes a run of ``model`` trained by ``optimizer`` writes at most at once, and by file."""
    weights = sum(int(v.nbytes) for v in model.state_dict().values())
    buffers = len(optimizer.buffer_names()) if hasattr(optimizer, "buffer_names") else 2
    checkpoint = weights * (1 + buffers)
    parts = {
        "model.npz": weights,
        "checkpoint.npz and its temporary copy": 2 * checkpoint,
        "plots, report and logs": PLOTS_MARGIN,
    }
    return sum(parts.values()), parts


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent folder (the run folder may not exist yet)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(os.sep)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_disk_space(run_dir: str | os.PathLike[str], model: Any, optimizer: Any) -> int:
    """Refuse, before anything is written, a run folder on a disk without room for the run.

    Returns:
        The estimated bytes needed.

    Raises:
        CnnlabError: the disk holding ``run_dir`` has less free space than the estimate;
            the message gives both and what the estimate is made of.
    """
    need, parts = needed_bytes(model, optimizer)
    folder = _existing(Path(run_dir))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # no answer (an odd file system): the atomic writes still protect the files
        return need
    if free < need:
        detail = ", ".join(f"{name} {_mib(n)}" for name, n in parts.items())
        raise CnnlabError(
            f"train: not enough free disk space for the run folder {run_dir}: {_mib(free)} free on "
            f"the disk of {folder}, about {_mib(need)} needed ({detail}); nothing was written. "
            "Free some space, or choose another --out"
        )
    return need
