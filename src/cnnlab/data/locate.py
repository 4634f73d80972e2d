"""Where dataset files are looked for, and the error that lists every place when they are missing.

Search order for a dataset ``name``:

1. the ``root`` folder the user gives (``--data-dir``), and ``root/<name>``;
2. ``$CNNLAB_DATA/<name>``;
3. the user cache, ``$XDG_CACHE_HOME/cnnlab/<name>`` or ``~/.cache/cnnlab/<name>`` (downloads go here);
4. system folders from distribution packages (Debian's ``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DATA_ENV = "CNNLAB_DATA"

#: Folders filled by distribution packages, with the install command to suggest.
SYSTEM_DIRS: dict[str, list[tuple[Path, str]]] = {
    "fashion-mnist": [(Path("/usr/share/datasets/fashion-mnist"), "apt-get install dataset-fashion-mnist")],
}


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/cnnlab/<name>``, or ``~/.cache/cnnlab/<name>`` when the variable is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab" / name


def search_dirs(name: str, root: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """The folders to look in, in order, each with a note on where it comes from."""
    places: list[tuple[Path, str]] = []
    if root is not None:
        places += [(Path(root), "root / --data-dir"), (Path(root) / name, "root / --data-dir")]
    if os.environ.get(DATA_ENV):
        places.append((Path(os.environ[DATA_ENV]) / name, f"${DATA_ENV}"))
    places.append((cache_dir(name), "user cache, where downloads go"))
    places += [(path, f"from `{command}`") for path, command in SYSTEM_DIRS.get(name, [])]
    unique: list[tuple[Path, str]] = []
    for path, note in places:
        if all(path != seen for seen, _ in unique):
            unique.append((path, note))
    return unique


def find_or_download(
    name: str,
    root: str | os.PathLike[str] | None,
    download: bool,
    wanted: str,
    find: Callable[[Path], T | None],
    fetch: Callable[[Path], None],
    url: str,
) -> T:
    """Return ``find(folder)`` for the first folder that has the files, downloading if allowed.

    Args:
        name: dataset name, e.g. "fashion-mnist".
        root: the user's data folder or None.
        download: whether ``fetch(cache_dir(name))`` may be tried when nothing is found.
        wanted: the file names looked for, for the error message.
        find: returns what was found in a folder, or None.
        fetch: downloads the files into the given folder.
        url: where the download comes from, for the error message.

    Raises:
        FileNotFoundError: nothing found and no download: the message lists every folder.
    """
    places = search_dirs(name, root)
    for folder, _ in places:
        found = find(folder)
        if found is not None:
            return found
    if download:
        try:
            fetch(cache_dir(name))
        except OSError as exc:
            reason = f"The download from {url} failed: {exc}"
        else:
            found = find(cache_dir(name))
            if found is not None:
                return found
            reason = f"The download from {url} finished but the files are still incomplete."
    else:
        # download=False: `cnnlab plot`, `bench --recipe` and the dashboard never download
        # (there is no --no-download option: `cnnlab train` always may).
        reason = "This command does not download (download=False)."
    looked = "\n".join(f"  - {folder}  ({note})" for folder, note in places)
    if os.environ.get(DATA_ENV) is None:
        looked += f"\n  - ${DATA_ENV}/{name}  (not set)"
    download_hint = (
        f'download them once with `python -c "from cnnlab.data import load_dataset; load_dataset({name!r})"` '
        f"(download=True, the default; or any `cnnlab train --data {name}`, which downloads missing files)"
    )
    hints = [
        "try the download again (check the network, or set $CNNLAB_MIRROR to a mirror)"
        if download
        else download_hint,
        "put the files in a folder and pass it with --data-dir / root=...",
        f"or set ${DATA_ENV} to a folder that holds {name}/",
    ]
    hints += [f"or install them: {command}" for _, command in SYSTEM_DIRS.get(name, [])]
    raise FileNotFoundError(
        f"{name}: dataset files not found. Looked for {wanted} in:\n{looked}\n{reason}\n"
        "To get them: " + "; ".join(hints) + "."
    )
