"""The optimizer contract: hold Param handles, update their values in place each step.

An optimizer keeps ``Param`` handles (not arrays), so ``model.astype(...)`` never leaves it
updating a stale copy; every step reads ``p.value`` and ``p.grad`` afresh and writes the
new value INTO ``p.value`` (``np.subtract(p.value, step, out=p.value)``), so references
held elsewhere (a layer's cache, a checkpoint view) stay valid.

Per-parameter state (momentum, Adam moments) lives in ``optimizer.state[p.path]`` as
arrays in the parameter's dtype, keyed by the dotted path of ``model.state_dict()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.layers.base import Param

#: Elements per block of an elementwise update: the value, gradient, state and work of one
#: block (5 x 256 KiB in float32) stay in cache through all the update's passes. Measured on
#: the fashion net, 1 thread: Adam 1.5 -> 1.3 ms, SGD with momentum 1.1 -> 0.7 ms per step
#: (blocks of 2**12 and 2**14 were slower).
BLOCK_ELEMENTS = 2**16

ONE_BELOW = math.nextafter(1.0, 0.0)  # the largest float below 1: upper bound of [0, 1)
SMALLEST = 5e-324  # the smallest positive float: lower bound of (0, inf)


def check_real(where: str, name: str, value: Any, low: float, high: float, expected: str) -> float:
    """Return ``value`` as a float if it is a finite real number in the given interval.

    ``low``/``high`` are inclusive bounds (``ONE_BELOW`` and ``SMALLEST`` make [0, 1) and
    (0, inf)). Otherwise raise the argument error, which names ``expected``.

    Example:
        >>> check_real("SGD", "momentum", 5, 0.0, ONE_BELOW, "a float in [0, 1)")
        Traceback (most recent call last):
        ...
        ValueError: SGD: argument `momentum` must be a float in [0, 1). Received: momentum=5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise arg_error(where, name, expected, value)
    if not (np.isfinite(value) and low <= value <= high):
        raise arg_error(where, name, expected, value)
    return float(value)


def check_lr(where: str, lr: Any, positive: bool = False) -> float:
    """Return ``lr`` as a float, or raise the argument error.

    A new optimizer needs ``lr > 0`` (``positive``); a schedule may take a running one's
    rate to 0, so a saved state may hold 0.
    """
    if positive:
        return check_real(where, "lr", lr, SMALLEST, math.inf, "a positive finite float")
    return check_real(where, "lr", lr, 0.0, math.inf, "a non-negative finite float")


class Optimizer:
    """Base class: a list of Param handles, a learning rate ``lr`` and a step counter ``t``.

    Subclasses name their per-parameter buffers in ``buffer_names()``, their other
    settings in ``hparams()``, and do the math in ``_update`` (in place, in the param dtype).

    Args:
        params: ``model.parameters()`` (a list of ``Param`` handles, non-empty, unique paths).
        lr: learning rate (> 0, finite); schedules set ``optimizer.lr`` between epochs.
    """

    #: True when ``_update`` is elementwise (each output element reads only the same element
    #: of its inputs: no norms or sums); then ``step`` runs it block by block
    #: (``BLOCK_ELEMENTS``) on large parameters, with the same results.
    elementwise: bool = False

    def __init__(self, params: Iterable[Param], lr: float) -> None:
        params = list(params)
        if not params:
            raise arg_error(self.name, "params", "a non-empty list of Param handles", params)
        for i, p in enumerate(params):
            if not isinstance(p, Param):
                raise arg_error(self.name, f"params[{i}]", "a Param (use model.parameters())", p)
        paths = [p.path for p in params]
        if len(set(paths)) != len(paths):
            dupes = sorted({q for q in paths if paths.count(q) > 1})
            raise arg_error(self.name, "params", "handles with unique paths", dupes)
        self.params: list[Param] = params
        self.lr: float = check_lr(self.name, lr, positive=True)
        self.t: int = 0  # number of step() calls so far
        self.state: dict[str, dict[str, np.ndarray]] = {p.path: {} for p in params}
        self._scratch: dict[str, np.ndarray] = {}  # one work array per param, never saved

    @property
    def name(self) -> str:
        return type(self).__name__

    # ---- what subclasses define ---------------------------------------------------------
    def buffer_names(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays (e.g. ``("momentum_buffer",)``)."""
        return ()

    def hparams(self) -> dict[str, Any]:
        """Settings other than ``lr`` (JSON-able), saved in ``state_dict()``."""
        return {}

    def _update(
        self, value: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], work: np.ndarray
    ) -> None:
        """Update ``value`` in place from ``grad``; ``work`` is a free array like ``value``."""
        raise NotImplementedError

    # ---- the training-loop API ----------------------------------------------------------
    @quiet_fp_method
    def step(self) -> None:
        """Apply one update to every parameter from its current gradient."""
        self.t += 1
        for p in self.params:
            value = p.value
            state, work = self._state_of(p.path, value), self._work_of(p.path, value)
            for part in self._blocks(value, p.grad, state, work):
                self._update(*part)

    def _blocks(
        self, value: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], work: np.ndarray
    ) -> Iterable[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]]:
        """``_update``'s arguments: whole, or as blocks of flat views for an elementwise update
        of a large parameter (each pass then runs over a block while it is in cache)."""
        arrays = [value, work, *state.values()]
        if (
            not self.elementwise
            or value.size <= BLOCK_ELEMENTS
            or not all(a.flags.c_contiguous for a in arrays)
        ):
            yield value, grad, state, work
            return
        v, g, w = value.reshape(-1), grad.reshape(-1), work.reshape(-1)  # views (g: a copy if strided)
        flat = {k: a.reshape(-1) for k, a in state.items()}
        for i in range(0, v.size, BLOCK_ELEMENTS):
            j = i + BLOCK_ELEMENTS
            yield v[i:j], g[i:j], {k: a[i:j] for k, a in flat.items()}, w[i:j]

    def zero_grad(self) -> None:
        """Do nothing: kept for PyTorch habits.

        cnnlab's ``backward`` OVERWRITES ``layer.grads`` (one backward per forward), so
        there is nothing to reset between steps, unlike PyTorch where ``.grad`` accumulates.
        """

    def _state_of(self, path: str, value: np.ndarray) -> dict[str, np.ndarray]:
        """The state of one param, created as zeros (or cast) to match ``value``."""
        state = self.state[path]
        for key in self.buffer_names():
            buf = state.get(key)
            if buf is None or buf.shape != value.shape:
                state[key] = np.zeros_like(value)
            elif buf.dtype != value.dtype:  # the model was astype()d after we were built
                state[key] = buf.astype(value.dtype)
        return state

    def _work_of(self, path: str, value: np.ndarray) -> np.ndarray:
        work = self._scratch.get(path)
        if work is None or work.shape != value.shape or work.dtype != value.dtype:
            work = self._scratch[path] = np.empty_like(value)
        return work

    # ---- saving and resuming ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: type, ``lr``, ``t``, settings and per-param arrays.

        Example: ``{"type": "SGD", "lr": 0.1, "t": 3, "hparams": {"momentum": 0.9, ...},
        "state": {"0.weight": {"momentum_buffer": array(...)}}}`` (arrays are copies).
        """
        state = {
            p.path: {k: v.copy() for k, v in self._state_of(p.path, p.value).items()} for p in self.params
        }
        return {"type": self.name, "lr": self.lr, "t": self.t, "hparams": self.hparams(), "state": state}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output; every key and shape is checked before any change.

        Raises:
            ValueError: another optimizer type, or a missing top-level key.
            KeyError: param paths or buffer names that do not match (all listed).
            ShapeError: a buffer whose shape differs from its parameter's.
        """
        where = f"{self.name}.load_state_dict"
        missing_top = [k for k in ("type", "lr", "t", "state") if k not in d]
        if missing_top:
            raise ValueError(f"{where}: missing keys {missing_top}. Received keys: {sorted(d)}")
        if d["type"] != self.name:
            raise ValueError(f"{where}: the state is from a {d['type']} optimizer, not {self.name}")
        given = d["state"]
        paths = [p.path for p in self.params]
        missing = [k for k in paths if k not in given]
        unexpected = [k for k in given if k not in paths]
        if missing or unexpected:
            raise KeyError(
                f"{where}: parameter paths do not match. Missing: {missing or 'none'}. "
                f"Unexpected: {unexpected or 'none'}. Expected: {paths}"
            )
        lr = check_lr(where, d["lr"])
        checked = self._with_hparams(d.get("hparams", {}))  # validates the saved settings
        names = checked.buffer_names()
        new_state: dict[str, dict[str, np.ndarray]] = {}
        for p in self.params:
            value, entry = p.value, given[p.path]
            if set(entry) != set(names):
                raise KeyError(
                    f"{where}: `{p.path}` must have buffers {list(names)}. Received: {sorted(entry)}"
                )
            new_state[p.path] = {}
            for key, arr in entry.items():
                arr = np.asarray(arr)
                if arr.shape != value.shape:
                    raise ShapeError(
                        f"{where}: `{p.path}` {key} must have shape {value.shape}. "
                        f"Received: shape {arr.shape}"
                    )
                new_state[p.path][key] = arr.astype(value.dtype, copy=True)
        for name in checked.hparams():
            setattr(self, name, getattr(checked, name))
        self.lr, self.t, self.state = lr, int(d["t"]), new_state

    def _with_hparams(self, hparams: dict[str, Any]) -> Optimizer:
        """A throwaway optimizer with the saved settings: the constructor validates them."""
        unknown = [k for k in hparams if k not in self.hparams()]
        if unknown:
            raise KeyError(f"{self.name}.load_state_dict: unknown settings {unknown}")
        # lr is checked on its own (a saved one may be 0 at the end of a schedule)
        return type(self)(self.params, 1.0, **{**self.hparams(), **hparams})

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.hparams().items())
        return f"{self.name}({len(self.params)} params, lr={self.lr!r}{options})"
