"""benchmarks/bench_numpy_floor.py: the convs it finds and the work it times (no timings asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def floor() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_numpy_floor", ROOT / "benchmarks" / "bench_numpy_floor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conv_shapes_of_the_reference_models(floor: Any) -> None:
    # small: 1->32 at 28x28 (sees the input: no dx), then 32->64 at 14x14; (C_out, K, P, first)
    assert floor.conv_shapes("small", 4) == [(32, 9, 4 * 28 * 28, 1), (64, 32 * 9, 4 * 14 * 14, 0)]
    resnet = floor.conv_shapes("resnet", 2)
    assert resnet[0] == (16, 27, 2 * 32 * 32, 1) and sum(first for *_, first in resnet) == 1
    # the stride-2 stages and their 1x1 shortcuts: 16->32 at 16x16 (K=144 and K=16)
    assert (32, 144, 2 * 16 * 16, 0) in resnet and (32, 16, 2 * 16 * 16, 0) in resnet
    assert len(resnet) == 9
    # the Conv2D class is left as it was
    from cnnlab.layers.conv import Conv2D

    assert Conv2D.forward.__name__ == "forward"


def test_conv_floor_times_dx_only_when_the_layer_needs_it(floor: Any) -> None:
    first = floor.conv_floor(8, 9, 50, 1, repeats=1)
    inner = floor.conv_floor(8, 72, 50, 0, repeats=1)
    assert set(first) == {"forward", "dW", "cols copy"}
    assert set(inner) == {"forward", "dW", "cols copy", "dX", "dcols copy"}
    assert all(t > 0 for t in (*first.values(), *inner.values()))


def test_main_prints_both_floors_beside_the_steps(
    floor: Any, torch: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.argv", ["bench_numpy_floor.py", "--models", "small", "--batch", "2",
                                     "--repeats", "1", "--rounds", "1"])  # fmt: skip
    floor.main()
    out = capsys.readouterr().out
    for line in ("FLOP floor of the convs", "shaped floor of the convs", "NumPy engine, whole step"):
        assert line in out
    assert out.count("\n    32     9     1568 ") == 1  # the first conv's row: C_out, K, P
