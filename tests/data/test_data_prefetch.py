"""prefetch / fit's overlap: the next batch prepared in a thread, the same batches (issue 25)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnnlab.data.prefetch import prefetch
from cnnlab.data.transforms import parse_augment
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models import build_model
from cnnlab.optim import make_optimizer
from cnnlab.train.loop.fit import TrainBatches, augmented, fit


def _batches(overlap: bool, epochs: int = 2) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """Every augmented batch of ``epochs`` epochs, and the generators' states after them."""
    gen = np.random.default_rng(0)
    x, y = gen.normal(size=(50, 1, 8, 8)).astype(np.float32), gen.integers(0, 3, 50)
    batches = TrainBatches(x, y, batch_size=8, seed=7, val_split=0.2)
    transform = parse_augment("shift,flip,rotate,erase,noise", (1, 8, 8))
    out = []
    for _ in range(epochs):
        out += list(augmented(batches.loader, transform, batches.rngs["augment"], overlap=overlap))
    return out, {name: rng.bit_generator.state for name, rng in batches.rngs.items()}


def test_overlap_gives_the_same_batches_and_generator_states_bit_for_bit():
    serial, serial_states = _batches(overlap=False)
    overlapped, overlapped_states = _batches(overlap=True)
    assert len(serial) == len(overlapped) == 10  # 40 training images, batch 8, 2 epochs
    for (xs, ys), (xo, yo) in zip(serial, overlapped, strict=True):
        assert xs.tobytes() == xo.tobytes()
        assert ys.tobytes() == yo.tobytes()
    assert serial_states == overlapped_states  # a checkpoint after the epoch saves the same


def test_fit_trains_the_same_with_and_without_overlap():
    gen = np.random.default_rng(1)
    x, y = gen.normal(size=(60, 1, 8, 8)).astype(np.float32), gen.integers(0, 10, 60)

    def run(overlap: bool):
        model = build_model("small_bn", in_channels=1, input_size=8, num_classes=10, rng=0)
        optimizer = make_optimizer("adam", model.parameters(), lr=0.01)
        transform = parse_augment("shift,flip", (1, 8, 8))
        history = fit(
            model, SoftmaxCrossEntropy(), optimizer, (x, y), val_split=0.2, epochs=2, batch_size=16,
            transform=transform, seed=3, verbose=False, overlap=overlap,
        )  # fmt: skip
        return model.state_dict(), [{k: v for k, v in r.items() if k != "seconds"} for r in history.rows]

    weights_serial, rows_serial = run(False)
    weights_overlap, rows_overlap = run(True)
    assert rows_overlap == rows_serial
    for key, value in weights_serial.items():
        assert weights_overlap[key].tobytes() == value.tobytes(), key


def test_the_next_item_is_produced_in_another_thread_while_the_caller_works():
    made: list[tuple[int, int, float]] = []  # (item, thread id, time)

    def source():
        for i in range(3):
            made.append((i, threading.get_ident(), time.perf_counter()))
            yield i

    it = prefetch(source())
    assert next(it) == 0
    time.sleep(0.2)  # the caller's "training step"
    asked = time.perf_counter()
    assert next(it) == 1
    assert made[1][2] < asked  # item 1 was ready before it was asked for
    assert {ident for _, ident, _ in made} == {made[0][1]} != {threading.get_ident()}
    assert list(it) == [2]


def test_an_error_while_producing_is_raised_at_its_item():
    def source():
        yield 1
        raise ValueError("bad batch 2")

    it = prefetch(source())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad batch 2"):
        next(it)


def test_leaving_early_stops_the_thread():
    before = {t.ident for t in threading.enumerate()}
    it = prefetch(iter(range(1000)))
    assert next(it) == 0
    it.close()  # a break / an exception in the caller's loop
    assert not [t for t in threading.enumerate() if t.ident not in before and t.name == "cnnlab-prefetch"]


def test_depth_is_checked():
    with pytest.raises(ValueError, match="depth"):
        prefetch(iter([1]), depth=0)
