"""Claiming a run folder: created, locked, checked and (with ``--overwrite``) cleared.

``train_run`` validates everything first (options, data, model) and only then claims the
folder, so a failed start leaves no folder and changes no file. The claim refuses a folder
that already holds a run unless the run is resumed (``--resume``) or replaced
(``--overwrite``: the old run's files go, plots and report included, never a mix). An empty
folder, or one holding only files that are not a run's, is fine. A folder the claim created
is removed again if nothing was written into it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.train.runs.files import REPORT_FILE, RUN_FILES
from cnnlab.train.runs.runlock import check_free, locked


def existing_run_files(run_dir: Path) -> list[str]:
    """The names of ``RUN_FILES`` present in ``run_dir``."""
    return [name for name in RUN_FILES if (run_dir / name).exists()]


def check_run_folder(run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse (reading only) a ``run_dir`` that a new run must not write into.

    Raises:
        ValueError: ``resume`` and ``overwrite`` together.
        CnnlabError: ``run_dir`` is a file, or holds a run and neither flag is given.
    """
    if resume and overwrite:
        raise ValueError(
            "--resume and --overwrite contradict each other: --resume continues the run in the "
            "folder, --overwrite deletes it. Give one of them"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise CnnlabError(f"--out {run_dir} is a file, not a folder")
    found = existing_run_files(run_dir) if run_dir.is_dir() else []
    if found and not (resume or overwrite):
        raise CnnlabError(
            f"{run_dir} already holds a run ({', '.join(found)}). To continue it: cnnlab train "
            f"--resume {run_dir}; to replace it (its files, plots/ and {REPORT_FILE} are deleted): "
            "add --overwrite; or choose another --out"
        )


def preflight(run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Before the data is loaded: the folder is not in use by a live run, nor refused."""
    if run_dir.is_dir():
        check_free(run_dir)
    check_run_folder(run_dir, resume, overwrite)


def clear_run(run_dir: Path) -> list[str]:
    """Delete the ``RUN_FILES`` of ``run_dir`` and temp files of killed writes; return the names."""
    removed = existing_run_files(run_dir)
    for name in removed:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    for temp in run_dir.glob(".*.tmp"):  # `.<name>.<hex>.tmp` of cnnlab.atomic
        if temp.is_file():
            temp.unlink(missing_ok=True)
    return removed


def _make_folder(run_dir: Path, unique: bool) -> tuple[Path, list[Path]]:
    """Create ``run_dir`` (with ``unique``: ``run_dir-2``, ``-3``, ... if it exists).

    Returns the folder and the folders this call created, deepest first.
    """
    candidate, n = run_dir, 1
    while True:
        missing = [p for p in (candidate, *candidate.parents) if not p.exists()]
        try:
            candidate.mkdir(parents=True, exist_ok=not unique)
        except FileExistsError:
            if not unique:
                raise
            n += 1
            candidate = run_dir.with_name(f"{run_dir.name}-{n}")
            continue
        return candidate, [p for p in missing if p.is_dir()]


@contextmanager
def claim_run_folder(
    run_dir: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    unique: bool = False,
    notice: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Create and lock ``run_dir`` for a run; yield the folder (locked until the block ends).

    Args:
        resume: the run continues (its files stay).
        overwrite: delete an old run's ``RUN_FILES`` first.
        unique: the folder is a default name: pick ``NAME-2``, ... instead of an existing one.
        notice: where one-line notices go (default: stderr).

    Raises:
        RunFolderLocked: another live run holds the folder.
        CnnlabError, ValueError: see ``check_run_folder``.
    """
    notice = notice or (lambda text: print(text, file=sys.stderr))
    folder, created = _make_folder(Path(run_dir), unique)
    try:
        with locked(folder, notice):
            check_run_folder(folder, resume, overwrite)  # again: no other run can write now
            if overwrite:
                removed = clear_run(folder)
                if removed:
                    names = ", ".join(removed)
                    notice(f"cnnlab train: --overwrite: deleted the old run's {names} in {folder}")
            yield folder
    finally:
        for path in created:  # deepest first; stops at the first folder something was written to
            try:
                path.rmdir()
            except OSError:
                break
