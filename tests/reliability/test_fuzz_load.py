"""Fuzz cnnlab.io.load and load_checkpoint with damaged and crafted files (hypothesis).

Every mutated file must either load correctly or raise one of the clean, documented error
types, never anything else (no TypeError, no MemoryError, no unpickling), and a file that
declares a huge array must be refused without allocating it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import CnnlabError
from cnnlab.io import HEADER_KEY, load, save
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.optim.adam import Adam
from cnnlab.train.loop.checkpoint import TrainState, load_checkpoint, save_checkpoint

#: The clean errors a bad file may raise (ShapeError is a ValueError).
CLEAN = (CnnlabError, ValueError, KeyError)
#: Examples per fuzz test; CNNLAB_FUZZ_SCALE=10 runs ten times as many (a long local run).
SCALE = float(os.environ.get("CNNLAB_FUZZ_SCALE", 1))
COUNT: dict[str, int] = {}
OUTCOMES: dict[str, int] = {}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=int(examples * SCALE),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


def make_model() -> Sequential:
    return Sequential(
        Conv2D(1, 2, kernel_size=3, padding=1, rng=0), BatchNorm2D(2), ReLU(), MaxPool2D(2),
        Flatten(), Dropout(0.1, rng=0), Dense(2 * 2 * 2, 3, rng=0),
    )  # fmt: skip


def valid_file(tmp: Path) -> bytes:
    path = save(make_model(), tmp / "valid.npz", extra={"classes": ["a", "b", "c"]})
    return path.read_bytes()


def members(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def npy_declaring(shape: tuple[int, ...], descr: str = "<f4", payload: bytes = b"\0" * 64) -> bytes:
    """An .npy member whose header declares ``shape`` but holds only ``payload``."""
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def check(tmp: Path, blob: bytes, kind: str) -> None:
    """Load ``blob``: a correct load or a clean error; anything else fails the test."""
    COUNT[kind] = COUNT.get(kind, 0) + 1
    path = tmp / "fuzz.npz"
    path.write_bytes(blob)
    try:
        model = load(path)
    except CLEAN as exc:
        outcome = f"{kind}: {type(exc).__name__}"
        OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1
        return
    OUTCOMES[f"{kind}: loaded"] = OUTCOMES.get(f"{kind}: loaded", 0) + 1
    assert len(model.state_dict()) == 8  # a correct load: every array of the architecture


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    tmp = tmp_path_factory.mktemp("fuzz")
    return tmp, valid_file(tmp)


@fuzz_settings(800)
@given(data=st.data())
def test_byte_flips(base: tuple[Path, bytes], data: st.DataObject) -> None:
    tmp, blob = base
    mutated = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        mutated[i] ^= data.draw(st.integers(1, 255))
    check(tmp, bytes(mutated), "byte flips")


@fuzz_settings(800)
@given(data=st.data())
def test_truncation_and_garbage_tails(base: tuple[Path, bytes], data: st.DataObject) -> None:
    tmp, blob = base
    cut = data.draw(st.integers(0, len(blob) - 1))
    tail = data.draw(st.binary(max_size=64))
    check(tmp, blob[:cut] + tail, "truncation")


def json_values() -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8))
    return st.recursive(
        leaf,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=8,
    )


@fuzz_settings(500)
@given(data=st.data())
def test_header_json_edits(base: tuple[Path, bytes], data: st.DataObject) -> None:
    tmp, blob = base
    files = members(blob)
    header = json.loads(np.load(io.BytesIO(files[HEADER_KEY + ".npy"])).tobytes())
    layers = header["architecture"]["args"]["layers"]
    where = data.draw(st.sampled_from(["top", "layer-arg", "layer-type", "raw"]))
    if where == "top":
        key = data.draw(
            st.sampled_from(["format", "format_version", "dtype", "architecture", "extra", "new"])
        )
        header[key] = data.draw(json_values())
    elif where == "layer-arg":
        layer = layers[data.draw(st.integers(0, len(layers) - 1))]
        args = layer.setdefault("args", {})
        key = data.draw(st.sampled_from([*sorted(args), "bogus"]))
        args[key] = data.draw(json_values() | st.integers(-3, 2**62))
    elif where == "layer-type":
        layers[data.draw(st.integers(0, len(layers) - 1))]["type"] = data.draw(
            st.sampled_from(["Conv2D", "Dense", "Nope", "__import__", "Sequential", "Residual"])
        )
    raw = json.dumps(header).encode()
    if where == "raw":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + data.draw(st.binary(max_size=4)) + raw[i + 1 :]
    files[HEADER_KEY + ".npy"] = npy(np.frombuffer(raw, np.uint8))
    check(tmp, rezip(files), "header edits")


@fuzz_settings(500)
@given(data=st.data())
def test_array_shape_dtype_and_member_edits(base: tuple[Path, bytes], data: st.DataObject) -> None:
    tmp, blob = base
    files = members(blob)
    names = sorted(files)
    name = data.draw(st.sampled_from(names))
    action = data.draw(st.sampled_from(["shape", "dtype", "object", "drop", "extra", "huge", "descr"]))
    if action == "shape":
        shape = tuple(data.draw(st.lists(st.integers(0, 5), max_size=4)))
        files[name] = npy(np.zeros(shape, np.float32))
    elif action == "dtype":
        dtype = data.draw(st.sampled_from(["f2", "f8", "i4", "u1", "c8", "?", "U3", "S2", "V4"]))
        old = np.load(io.BytesIO(files[name]))
        files[name] = npy(np.zeros(old.shape, dtype))
    elif action == "object":
        files[name] = npy(np.array([{"a": 1}, None], dtype=object))  # needs pickle to read
    elif action == "drop":
        del files[name]
    elif action == "extra":
        files["sneaky.npy"] = npy(np.zeros(3, np.float32))
    elif action == "huge":
        dims = data.draw(st.lists(st.integers(1, 2**40), min_size=1, max_size=4))
        files[name] = npy_declaring(tuple(dims), data.draw(st.sampled_from(["<f4", "|u1", "<f8"])))
    else:
        files[name] = npy_declaring((2,), data.draw(st.sampled_from(["O", "<U0", "V0", "(2,)f4", "<M8[s]"])))
    check(tmp, rezip(files), "array edits")


@pytest.mark.parametrize("member", [HEADER_KEY + ".npy", "0.weight.npy", "sneaky.npy"])
@pytest.mark.parametrize("shape", [(2**34,), (2**20, 2**20), (2**12, 2**12, 2**12)])
def test_huge_declared_shapes_do_not_allocate(base: tuple[Path, bytes], member: str, shape: tuple) -> None:
    tmp, blob = base
    files = members(blob)
    files[member] = npy_declaring(shape, "|u1" if member.startswith(HEADER_KEY) else "<f4")
    crafted = rezip(files)
    path = tmp / "huge.npz"
    path.write_bytes(crafted)
    tracemalloc.start()
    try:
        with pytest.raises(CLEAN):
            load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * len(crafted) + 2**20, f"peak {peak} bytes for a {len(crafted)}-byte file"


# ---- checkpoints ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    tmp = tmp_path_factory.mktemp("ckpt")
    model = make_model()
    optimizer = Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    state = TrainState(
        epoch=1,
        history=[{"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")}],
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        rngs={"shuffle": rng.bit_generator.state},
    )
    return tmp, save_checkpoint(tmp / "checkpoint.npz", state).read_bytes()


@fuzz_settings(600)
@given(data=st.data())
def test_checkpoint_flips_and_truncation(checkpoint: tuple[Path, bytes], data: st.DataObject) -> None:
    tmp, blob = checkpoint
    mutated = bytearray(blob)
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 8))):
            mutated[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    else:
        mutated = mutated[: data.draw(st.integers(0, len(blob) - 1))]
    COUNT["checkpoint"] = COUNT.get("checkpoint", 0) + 1
    path = tmp / "fuzz-checkpoint.npz"
    path.write_bytes(bytes(mutated))
    model = make_model()
    try:
        state = load_checkpoint(path, model, Adam(model.parameters(), lr=0.01))
    except CLEAN:
        return
    assert state.epoch == len(state.history)


def test_check_tells_a_correct_load_from_a_clean_refusal(
    base: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness the fuzz tests share can tell the outcomes apart (so they can fail)."""
    tmp, blob = base
    before = dict(OUTCOMES)

    def added(loaded: bool) -> int:
        keys = [k for k in OUTCOMES if k.startswith("harness: ") and (k == "harness: loaded") == loaded]
        return sum(OUTCOMES[k] - before.get(k, 0) for k in keys)

    check(tmp, blob, "harness")  # the untouched file loads correctly
    check(tmp, blob[: len(blob) // 2], "harness")  # half a file is refused with a clean error
    assert (added(loaded=True), added(loaded=False)) == (1, 1)
    # A "load" that lost arrays is caught by check, not counted as a correct load.
    lossy = lambda path: Sequential(*make_model().layers[:-1])  # noqa: E731  (6 arrays, not 8)
    monkeypatch.setattr(sys.modules[__name__], "load", lossy)
    with pytest.raises(AssertionError):
        check(tmp, blob, "harness")


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Any:
    """After the module: print the number of fuzz cases run (for docs/reliability.md; use -s)."""
    yield
    print("\nfuzz cases:", COUNT, "total", sum(COUNT.values()), "model-file outcomes:", OUTCOMES)
