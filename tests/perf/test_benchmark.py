"""Smoke tests of the benchmark harness (no timings asserted)."""

from __future__ import annotations

import os

import pytest

from cnnlab.cli import bench_cmd, benchmark


def test_forward_flops_of_small_by_hand():
    # Layer.flops: 2 per multiply-add, +1 per bias add, ReLU 1 per element, pool 1 per window cell.
    conv1 = 2 * 28 * 28 * 32 * (1 * 9) + 32 * 28 * 28
    relu_pool1 = 32 * 28 * 28 + 32 * 14 * 14 * 4
    conv2 = 2 * 14 * 14 * 64 * (32 * 9) + 64 * 14 * 14
    relu_pool2 = 64 * 14 * 14 + 64 * 7 * 7 * 4
    dense = 2 * 3136 * 128 + 128 + 128 + 2 * 128 * 10 + 10  # Dense, ReLU, Dense
    expected = conv1 + relu_pool1 + conv2 + relu_pool2 + dense
    assert benchmark.forward_flops("small", 3) == 3.0 * expected


def test_profile_rows_follow_sequential_fusion():
    text = benchmark.profile(batch=2, steps=3, model="small")
    assert "1: ReLU() + 2: MaxPool2D(2)" in text
    assert "0: Conv2D(1, 32, kernel_size=3, padding=1)" in text


def test_profile_rows_keep_the_models_indices_around_containers():
    text = benchmark.profile(batch=2, steps=2, model="resnet")
    assert "1: BatchNorm2D(16) + 2: ReLU()" in text  # fused pairs: one row each
    assert "3: Residual(Sequential(Conv2D(16... + 4: ReLU()" in text
    assert "5: Residual(" in text and "6: ReLU()" in text and "\n4: ReLU()" not in text
    # Rows inside a block carry the model's paths (the fused view has fewer layers).
    assert "  3.block.0: Conv2D(16, 16, kernel_size=3" in text
    assert "  3.block.1+2: BatchNorm2D(16) + ReLU()" in text
    assert "  3.block.3: Conv2D(16, 16, kernel_size=3" in text and "  3.block.4: BatchNorm2D(16)" in text
    assert "  7.shortcut.1: BatchNorm2D(64)" in text and "relu" not in text
    small = benchmark.profile(batch=2, steps=2, model="small")
    assert "4: ReLU() + 5: MaxPool2D(2)" in small and "1.relu" not in small


def test_profile_has_no_kernel_tier_column():
    lines = benchmark.profile(batch=2, steps=2, model="small").splitlines()
    assert lines[1].rstrip().endswith("share")  # one engine: nothing to tell apart per conv


def test_interleaved_timing_and_table():
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = benchmark.time_interleaved(steps, rounds=3, per_round=1, warmup=0, pause=0)
    assert set(times) == {"a", "b", "c"}
    # Rounds rotate: no library always runs right after the same other one.
    assert calls == list("abc" + "bca" + "cab")
    row = {
        "model": "small",
        "mode": "train",
        "batch": 8,
        "lib": "a",
        "ms": 1.0,
        "images_per_s": 8000.0,
        "gflops": 1.0,
        "vs_gemm": 0.01,
        "ratio_vs_torch": 1.0,
    }
    assert "small   train" in benchmark.format_table([row])


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match=r"--models.*Received: --models='nope'"):
        bench_cmd.main(["--models", "nope", "--profile"])


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--batches", "0", "comma-separated positive ints such as 32,128"),
        ("--batches", "x", "comma-separated positive ints such as 32,128"),  # was: invalid literal for int()
        ("--batches", "32,,-1", "comma-separated positive ints such as 32,128"),
        ("--modes", "fly", "names from train, forward"),  # was: a whole benchmark run as 'fly'
        ("--models", ",", "names from small, resnet, fashion"),
    ],
)
def test_bad_batches_modes_and_models_are_refused_before_timing(flag, value, expected):
    with pytest.raises(ValueError, match=f"`{flag}` must be {expected}"):
        bench_cmd.main([flag, value, "--no-memory"])


def test_the_kernel_tier_option_is_gone(capsys):
    with pytest.raises(SystemExit):
        bench_cmd.main(["--tiers", "numpy"])
    assert "unrecognized arguments: --tiers" in capsys.readouterr().err


def test_a_run_leaves_the_environment_as_it_was(monkeypatch):
    """The steps read no environment variable and write none (the old tiers rewrote os.environ)."""
    # threadpoolctl (which the run imports to name the BLAS kernel) sets KMP_DUPLICATE_LIB_OK
    # when it is first imported: a third party's import, not the run; imported here first so
    # the comparison does not depend on whether an earlier test imported it.
    pytest.importorskip("threadpoolctl")
    before = dict(os.environ)
    monkeypatch.setattr(benchmark, "gemm_gflops", lambda: 1.0)
    rows = benchmark.run(
        (2,),
        rounds=1,
        libs=["cnnlab"],
        memory=False,
        models=("small",),
        modes=("train", "forward"),
        print_fn=lambda s: None,
    )
    assert {r["lib"] for r in rows} == {"cnnlab"} and len(rows) == 2
    assert dict(os.environ) == before
