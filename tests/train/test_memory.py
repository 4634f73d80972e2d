"""A model too large to train is refused before allocating, with the estimated memory."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.init import TooManyParameters, dry_build, torch_default_uniform
from cnnlab.models import build_model, model_from_file
from cnnlab.train.runs.memory import check_fits, estimate

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")


def vgg(**kwargs: object) -> functools.partial[object]:
    return functools.partial(build_model, "vgg", 1, (28, 28), 10, 0, **kwargs)


def test_a_dry_build_allocates_nothing_and_counts_every_parameter() -> None:
    # vgg depth 7 has 76M parameters (303 MB as float32); dry, it costs a few kB.
    tracemalloc.start()
    with dry_build(limit=10**12):
        dry = vgg(depth=7)()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20
    real = vgg(depth=3)()
    with dry_build(limit=10**12):
        dry3 = vgg(depth=3)()
    assert estimate(dry3, (1, 28, 28), 8) == estimate(real, (1, 28, 28), 8)
    # by hand: per block two conv3x3 (no bias) + two BatchNorms; 28 -> 1 pixel after 5 pools
    widths, expected, c_in = [32 * 2**i for i in range(7)], 0, 1
    for w in widths:
        expected += 9 * (c_in * w + w * w) + 2 * 2 * w
        c_in = w
    expected += 2048 * 128 + 128 + 128 * 10 + 10
    assert sum(p.value.size for p in dry.parameters()) == expected == 75_768_362


def test_a_real_build_after_a_dry_one_draws_the_same_weights() -> None:
    with dry_build(limit=10**9):
        vgg(depth=2)()
    a, b = vgg(depth=2)(), vgg(depth=2)()
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[key], value)


def test_the_dry_build_stops_at_its_limit() -> None:
    with (
        dry_build(limit=100),
        pytest.raises(TooManyParameters, match=r"more than 100 parameters \(at least 150\)"),
    ):
        torch_default_uniform((10, 10), 10, np.random.default_rng(0))
        torch_default_uniform((50,), 10, np.random.default_rng(0))


def test_activations_count_every_layer_output() -> None:
    model = model_from_file(TINY, 1, (8, 8), 10, rng=0)
    # conv (4,8,8)=256, relu 256, pool (4,4,4)=64, flatten 64, dropout 64, dense 10: 714 per example
    assert estimate(model, (1, 8, 8), 32).activations == 32 * 714


def test_refused_with_the_estimate_when_memory_is_short() -> None:
    with pytest.raises(CnnlabError) as info:
        check_fits(vgg(depth=3), (1, 28, 28), 256, "vgg(depth=3)", available=100 * 2**20)
    message = str(info.value)
    assert message.startswith("train: vgg(depth=3) with batch size 256 needs an estimated ")
    assert "435,754 parameters x12" in message and "activation values for the batch x3" in message
    assert message.endswith(
        "but only 100.0 MiB of memory is available; refused before allocating anything. Use a smaller "
        "model (e.g. a lower --depth or --width) or a smaller --batch-size"
    )
    assert check_fits(vgg(depth=3), (1, 28, 28), 256, "vgg", available=2**40).parameters == 435_754


def test_deep_vgg_from_the_cli_is_refused_before_allocating(tmp_path: Path) -> None:
    # Address space capped at 3 GiB: a build that allocates would die with MemoryError here
    # (before the fix the kernel killed it at 23 GB); the dry build needs none of it.
    pytest.importorskip("resource")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30)); "
        "from cnnlab.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    argv = ["train", "--model", "vgg", "--depth", "99", "--quiet", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "cnnlab train: error: train: vgg(depth=99) needs at least 2,415,910,176 parameters (about "
        "108.0 GiB to train), more than the 2,147,483,648 that cnnlab.load accepts; refused before "
        "allocating anything. Use a smaller model (e.g. a lower --depth or --width)"
    ]
    assert not out.exists()
