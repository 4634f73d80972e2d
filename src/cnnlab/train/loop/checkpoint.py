"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is written at the end of every epoch (``RUN_DIR/checkpoint.npz``) and holds:

- ``model/<key>``: every weight and buffer of ``model.state_dict()``;
- ``optimizer/<param path>/<buffer>``: the optimizer's per-parameter arrays (momentum, Adam
  moments);
- ``callback/<index>:<class>/<key>``: model-shaped arrays a callback keeps (EarlyStopping's
  best weights), its other state in the header;
- ``__checkpoint__``: a JSON header (UTF-8 bytes as a ``uint8`` array) with the epochs
  finished, the History rows, the optimizer's ``lr``/``t``/settings, the schedule's
  ``state_dict()`` and the state of every random generator (numpy
  ``bit_generator.state`` dicts: the split, shuffle and augmentation streams of ``fit``
  and each Dropout layer's generator).

Like model files it is an ``.npz`` read with ``allow_pickle=False`` (no file can run code),
every declared array shape is checked before any array is read, and it is written
atomically (temp file in the same folder, flush, fsync, ``os.replace``), so a crash or a
full disk never leaves a half-written checkpoint in place of the previous one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError
from cnnlab.npzfile import ZIP_ERRORS, check_crc, check_declared, declared_arrays, open_npz, read_json_header

HEADER_KEY = "__checkpoint__"
FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 1
#: Functions called as ``hook(epoch, stage, file)`` during each checkpoint write: at stage
#: "written" (every byte in the temp file, ``file`` still open, not yet renamed) and "saved"
#: (the new checkpoint in place, ``file`` None). Empty in use; the tests that kill a run on
#: purpose add a fault injector here (``tests/checkpoint_faults.py``).
WRITE_HOOKS: list[Callable[[int, str, Any], None]] = []


@dataclass
class TrainState:
    """The state of a training run after ``epoch`` finished epochs (what a checkpoint holds).

    Attributes:
        epoch: epochs finished; training continues with epoch ``epoch + 1``.
        history: the History rows of those epochs.
        model: ``model.state_dict()`` (weights and buffers).
        optimizer: ``optimizer.state_dict()`` (None when the optimizer has none).
        schedule: ``schedule.state_dict()`` (None without a schedule).
        rngs: name -> ``Generator.bit_generator.state`` for every random stream.
        stopped: a callback (EarlyStopping) ended training after this epoch.
        callbacks: ``"<index>:<class name>"`` -> the callback's ``state_dict()`` (those that
            keep one, e.g. EarlyStopping's best weights and patience count).
    """

    epoch: int
    history: list[dict[str, Any]]
    model: dict[str, np.ndarray]
    optimizer: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    rngs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopped: bool = False
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the last finished epoch is saved; the message says how to resume."""

    def __init__(self, message: str, run_dir: Path, epoch: int) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.epoch = epoch


# ---- capture and restore (used by fit) -----------------------------------------------------
def layer_rngs(model: Any) -> dict[str, np.random.Generator]:
    """The random generators inside the model (Dropout masks), by ``layer:<dotted path>``."""
    named = getattr(model, "named_layers", None)
    if named is None:
        return {}
    return {
        f"layer:{prefix.rstrip('.')}": layer._rng
        for prefix, layer in named()
        if isinstance(getattr(layer, "_rng", None), np.random.Generator)
    }


def capture_state(
    epoch: int,
    model: Any,
    optimizer: Any,
    schedule: Any,
    history: Any,
    rngs: dict[str, np.random.Generator],
    stopped: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainState:
    """Snapshot everything ``fit`` needs to continue after ``epoch`` (arrays are copies, or
    arrays a callback never edits in place)."""
    return TrainState(
        epoch=epoch,
        history=[dict(row) for row in history.rows],
        model=model.state_dict(),
        optimizer=optimizer.state_dict() if hasattr(optimizer, "state_dict") else None,
        schedule=schedule.state_dict() if hasattr(schedule, "state_dict") else None,
        rngs={name: dict(gen.bit_generator.state) for name, gen in rngs.items()},
        stopped=stopped,
        callbacks={key: state for key, cb in _keyed(callbacks) if (state := _callback_state(cb)) is not None},
    )


def _keyed(callbacks: Sequence[Any]) -> list[tuple[str, Any]]:
    """``("<index>:<class name>", callback)``: a resumed run with the same config matches them up."""
    return [(f"{i}:{type(cb).__name__}", cb) for i, cb in enumerate(callbacks)]


def _callback_state(cb: Any) -> dict[str, Any] | None:
    method = getattr(cb, "state_dict", None)
    return method() if callable(method) else None


def restore_callbacks(state: TrainState, callbacks: Sequence[Any]) -> None:
    """Give each callback its saved ``state_dict()`` back (those with one in ``state``).

    A callback gets the state saved under its own ``"<index>:<class>"``; failing that (a
    resume with a callback more or less in front of it), the one state saved for its class,
    when its class occurs once among the callbacks and once in ``state``.
    """
    classes = [type(cb).__name__ for cb in callbacks]
    saved_classes = [key.split(":", 1)[-1] for key in state.callbacks]
    for key, cb in _keyed(callbacks):
        name = type(cb).__name__
        if key not in state.callbacks and classes.count(name) == 1 and saved_classes.count(name) == 1:
            key = next(k for k in state.callbacks if k.split(":", 1)[-1] == name)
        if key in state.callbacks and callable(getattr(cb, "load_state_dict", None)):
            try:
                cb.load_state_dict(state.callbacks[key])
            except (TypeError, ValueError, KeyError) as exc:
                raise CnnlabError(f"resume: invalid state for the callback {key!r}: {exc!r}") from None


def restore_state(
    state: TrainState, model: Any, optimizer: Any, schedule: Any, rngs: dict[str, np.random.Generator]
) -> None:
    """Load ``state`` into the model, optimizer, schedule and generators (in that order)."""
    missing = sorted(set(rngs) - set(state.rngs))
    if missing:
        raise CnnlabError(f"resume: the checkpoint has no state for the random stream(s) {missing}")
    model.load_state_dict(state.model)
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    if state.schedule is not None and schedule is not None:
        schedule.load_state_dict(state.schedule)  # sets optimizer.lr to the saved rate
    for name, gen in rngs.items():
        try:
            gen.bit_generator.state = state.rngs[name]
        except (TypeError, ValueError, KeyError) as exc:
            raise CnnlabError(f"resume: invalid state for the random stream {name!r}: {exc}") from None


# ---- write -----------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike[str], state: TrainState) -> Path:
    """Write ``state`` to ``path`` atomically (never pickle). Returns the path."""
    path = Path(path)
    optimizer = dict(state.optimizer) if state.optimizer is not None else None
    arrays: dict[str, Any] = {f"model/{k}": v for k, v in state.model.items()}
    if optimizer is not None:
        per_param = optimizer.pop("state", {})
        optimizer["buffers"] = {p: sorted(bufs) for p, bufs in per_param.items()}
        for p, bufs in per_param.items():
            arrays.update({f"optimizer/{p}/{name}": arr for name, arr in bufs.items()})
    callbacks: dict[str, Any] = {}
    for key, cb_state in state.callbacks.items():
        cb_arrays = cb_state.get("arrays", {})
        callbacks[key] = {**cb_state, "arrays": sorted(cb_arrays)}
        arrays.update({f"callback/{key}/{name}": arr for name, arr in cb_arrays.items()})
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": state.epoch,
        "history": state.history,
        "optimizer": optimizer,
        "schedule": state.schedule,
        "rngs": state.rngs,
        "stopped": state.stopped,
        "callbacks": callbacks,
    }
    raw = json.dumps(header).encode("utf-8")  # NaN (no validation yet) is written as NaN
    arrays[HEADER_KEY] = np.frombuffer(raw, np.uint8)

    def write(f: Any) -> None:
        np.savez(f, **arrays)
        for hook in WRITE_HOOKS:
            hook(state.epoch, "written", f)

    try:
        atomic_write(path, write)
    except OSError as exc:
        raise CnnlabError(
            f"checkpoint: cannot write {str(path)!r}: {exc.strerror or exc}; "
            "the previous checkpoint (if any) is unchanged. Free disk space or choose another --out"
        ) from exc
    for hook in WRITE_HOOKS:
        hook(state.epoch, "saved", None)
    return path


def _file_id(path: Path) -> tuple[int, int] | None:
    """Inode and mtime of ``path`` (None if absent): an atomic replace changes it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class CheckpointWriter:
    """``fit``'s ``checkpoint_fn``: writes the checkpoint and knows the last epoch saved.

    ``saved_epoch`` is read from the file, not from a flag set after the write: a Ctrl-C
    can land at any point (inside the write, after ``os.replace`` but before the bookkeeping,
    or inside it), and an epoch counts as saved exactly when its file replaced the old one.
    ``is_main=False`` (a torchrun rank that does not write) counts an epoch once it was offered.
    """

    def __init__(self, path: str | os.PathLike[str], is_main: bool = True, start_epoch: int = 0) -> None:
        self.path, self.is_main = Path(path), is_main
        self._saved = start_epoch  # the last epoch known to be in the file
        self._pending: tuple[int, tuple[int, int] | None] | None = None  # (epoch, file id before)

    def __call__(self, state: Any) -> None:
        self._pending = (state.epoch, _file_id(self.path))  # set before the write starts
        if self.is_main:  # under torchrun, one writer
            save_checkpoint(self.path, state)
        self._settle()

    @property
    def saved_epoch(self) -> int:
        """The last epoch whose checkpoint is on disk (the start epoch if none was written)."""
        self._settle()
        return self._saved

    def _settle(self) -> None:
        """Count the pending epoch if its file replaced the old one (idempotent)."""
        if self._pending is None:
            return
        epoch, before = self._pending
        if not self.is_main or _file_id(self.path) != before:
            self._saved = epoch
        self._pending = None


def remove_stale_temp_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files left by a write that was killed (``.<name>.<hex>.tmp``)."""
    removed = [p for p in Path(run_dir).glob(".*.tmp") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


# ---- read ------------------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike[str], model: Any, optimizer: Any = None) -> TrainState:
    """Read a checkpoint written by ``save_checkpoint`` for ``model`` (and ``optimizer``).

    Every array's declared shape and dtype is compared with the model's (and the
    optimizer's parameters') before any array data is read.

    Raises:
        FileNotFoundError: no file at ``path``.
        CnnlabError: not a cnnlab checkpoint, a corrupt/truncated file, or arrays that do
            not match the model.
    """
    path = Path(path)
    where = f"resume: checkpoint {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file")
    try:
        with open_npz(path, where, "a cnnlab checkpoint") as npz:
            missing = f"{where} is not a cnnlab checkpoint (no {HEADER_KEY!r} header)"
            header = _check_header(read_json_header(npz, HEADER_KEY, where, missing), where)
            model_shapes = {k: v.shape for k, v in model.state_dict().items()}
            expected = {f"model/{k}": (shape, "model") for k, shape in model_shapes.items()}
            shapes = {p.path: p.value.shape for p in getattr(optimizer, "params", [])}
            for p, names in (header.get("optimizer") or {}).get("buffers", {}).items():
                for name in names:
                    if p not in shapes:
                        raise CnnlabError(f"{where}: optimizer state for unknown parameter {p!r}")
                    expected[f"optimizer/{p}/{name}"] = (shapes[p], "optimizer")
            for key, cb_state in header.get("callbacks", {}).items():
                for name in cb_state["arrays"]:  # a callback keeps model-shaped arrays only
                    if name not in model_shapes:
                        raise CnnlabError(
                            f"{where}: callback {key!r} keeps an array for unknown weight {name!r}"
                        )
                    expected[f"callback/{key}/{name}"] = (model_shapes[name], "model")
            declared = declared_arrays(npz, skip=HEADER_KEY)
            mismatch = "the arrays do not match this model (another architecture?)"
            check_declared(declared, expected, where, "f", mismatch)
            check_crc(npz, where)
            arrays = {key: npz[key] for key, _, _ in declared}
    except CnnlabError:
        raise
    except ZIP_ERRORS as exc:
        raise CnnlabError(f"{where} is unreadable (truncated or corrupt?): {exc}") from None
    optimizer_state = header.get("optimizer")
    if optimizer_state is not None:
        buffers = optimizer_state.pop("buffers", {})
        optimizer_state["state"] = {
            p: {name: arrays[f"optimizer/{p}/{name}"] for name in names} for p, names in buffers.items()
        }
    return TrainState(
        epoch=header["epoch"],
        history=header["history"],
        model={k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")},
        optimizer=optimizer_state,
        schedule=header.get("schedule"),
        rngs=header["rngs"],
        stopped=header.get("stopped") is True,
        callbacks={
            key: {
                **cb_state,
                "arrays": {name: arrays[f"callback/{key}/{name}"] for name in cb_state["arrays"]},
            }
            for key, cb_state in header.get("callbacks", {}).items()
        },
    )


def _check_header(header: Any, where: str) -> dict[str, Any]:
    """The parsed header, checked: a checkpoint of this format whose parts agree."""
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CnnlabError(f"{where}: the header does not say format {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise CnnlabError(f"{where}: unsupported format_version {header.get('format_version')!r}")
    epoch, history, rngs = header.get("epoch"), header.get("history"), header.get("rngs")
    if not (isinstance(epoch, int) and epoch >= 0 and isinstance(history, list) and len(history) == epoch):
        raise CnnlabError(f"{where}: `epoch` and `history` do not agree (corrupt header)")
    optimizer = header.get("optimizer") or {}
    if not isinstance(rngs, dict) or not isinstance(optimizer, dict):
        raise CnnlabError(f"{where}: `rngs` and `optimizer` must be JSON objects")
    buffers = optimizer.get("buffers", {})
    if not isinstance(buffers, dict) or not all(
        isinstance(names, list) and all(isinstance(n, str) for n in names) for names in buffers.values()
    ):
        raise CnnlabError(f"{where}: optimizer `buffers` must map parameter paths to lists of names")
    callbacks = header.get("callbacks", {})  # absent in checkpoints written before it existed
    if not isinstance(callbacks, dict) or not all(
        isinstance(key, str)
        and "/" not in key
        and isinstance(state, dict)
        and isinstance(state.get("arrays"), list)
        and all(isinstance(n, str) for n in state["arrays"])
        for key, state in callbacks.items()
    ):
        raise CnnlabError(f"{where}: `callbacks` must map names to objects with a list of `arrays`")
    for row in history:
        if not isinstance(row, dict):
            raise CnnlabError(f"{where}: every history row must be a JSON object")
        for key, value in row.items():
            if not isinstance(value, int | float) or (key == "epoch" and math.isnan(value)):
                raise CnnlabError(f"{where}: history value {key}={value!r} is not a number")
    return header
