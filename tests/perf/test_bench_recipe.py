"""`cnnlab bench --recipe`: real training steps per engine, on a tiny generated Fashion-MNIST.

No timings are asserted, only that the rows hold together and that every timed step is a
real one: a batch from the trainer's loader, augmented, through the engine's train_step.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli_run import exit_status
from cnnlab.data import locate
from cnnlab.data.idx import IDX_FILES

E = "cnnlab bench: error: "
N_TRAIN, N_TEST = 40, 10  # val_split 0.1 of the recipe holds out 4: 36 training images, 1 batch


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Fashion-MNIST is found (cache, $CNNLAB_DATA, system folder), nothing downloaded."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    system = [(tmp_path / "usr-share", "apt-get install dataset-fashion-mnist")]
    monkeypatch.setitem(locate.SYSTEM_DIRS, "fashion-mnist", system)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("cnnlab bench must not download")

    monkeypatch.setattr("cnnlab.data.idx.download_file", no_download)


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> Path:
    """The four Fashion-MNIST IDX files (gzip), 40 train and 10 test images of 28x28."""
    folder = tmp_path / "fashion"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for (split, part), base in IDX_FILES.items():
        n = N_TRAIN if split == "train" else N_TEST
        a = rng.integers(0, 256, (n, 28, 28)) if part == "images" else np.arange(n) % 10
        header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        (folder / f"{base}.gz").write_bytes(gzip.compress(header + a.astype(np.uint8).tobytes()))
    return folder


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """Run ``cnnlab argv`` in-process: (exit status, stdout, stderr lines)."""
    code = exit_status(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def test_recipe_rows_time_real_augmented_steps_of_each_engine(
    torch: Any, tiny_fashion: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from cnnlab.data.transforms import Compose
    from cnnlab.train.loop.engines.numpy_engine import NumpyEngine
    from cnnlab.train.loop.engines.torch_engine import TorchEngine

    augmented: list[np.ndarray] = []  # every batch the recipe's shift+flip produced
    steps: list[tuple[str, tuple[int, ...]]] = []  # (engine, batch shape) of every step

    def spy_augment(self: Any, x: np.ndarray, rng: Any) -> np.ndarray:
        out = real_augment(self, x, rng)
        augmented.append(out)
        return out

    def spy_step(real: Any, name: str) -> Any:
        def step(self: Any, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float]:
            # the batch augmented for it (the next one may be in the making: overlap)
            assert any(xb is a for a in augmented[-3:]), "the step must get an augmented batch"
            steps.append((name, xb.shape))
            return real(self, xb, yb)

        return step

    real_augment = Compose.__call__
    monkeypatch.setattr(Compose, "__call__", spy_augment)
    monkeypatch.setattr(NumpyEngine, "train_step", spy_step(NumpyEngine.train_step, "numpy"))
    monkeypatch.setattr(TorchEngine, "train_step", spy_step(TorchEngine.train_step, "torch"))
    rows_file = tmp_path / "rows.json"
    environment = dict(os.environ)
    code, out, err = cli(
        capsys,
        "bench",
        "--recipe",
        "fashion",
        "--data-dir",
        str(tiny_fashion),
        "--steps",
        "2",
        "--rounds",
        "1",
        "--json",
        str(rows_file),
        "--no-memory",
    )
    assert code == 0, err
    assert "recipe fashion: vgg(widths=[16, 64], dropout=0.0) on fashion-mnist 1x28x28, batch 128" in out
    assert "training part: 36 images (val_split 0.1): 1 steps per epoch" in out
    # Each engine's 3 warm-up steps, then 1 round of 2 steps each, all on the 36 training images.
    batch = (36, 1, 28, 28)
    assert (
        steps
        == [("numpy", batch)] * 3 + [("torch", batch)] * 3 + [("numpy", batch)] * 2 + [("torch", batch)] * 2
    )
    assert 10 <= len(augmented) <= 14  # + up to 2 prepared ahead per engine line (overlap)
    # No cnnlab setting was written into the environment (the kernel tiers used to be).
    changed = {k for k in os.environ.keys() | environment.keys() if os.environ.get(k) != environment.get(k)}
    assert not {k for k in changed if k.startswith("CNNLAB_")}, changed

    rows = json.loads(rows_file.read_text())
    assert [r["engine"] for r in rows] == ["numpy", "torch", "plain"]
    plain_ms = rows[2]["ms"]
    table = out.splitlines()[-3:]
    assert "the whole epoch timed (2 steps)" in out  # 1 step per epoch: nothing extrapolated
    for row, line in zip(rows, table, strict=True):
        assert row["recipe"] == "fashion" and row["batch_size"] == 128 and row["steps_per_epoch"] == 1
        assert row["ms"] > 0 and row["timed_steps"] == 2
        assert row["steps_per_s"] == pytest.approx(1e3 / row["ms"])
        assert row["epoch_s"] == pytest.approx(row["steps_per_epoch"] * row["mean_ms"] / 1e3)
        assert row["ratio_vs_plain"] == pytest.approx(row["ms"] / plain_ms)
        assert line.split() == [
            row["engine"],
            f"{row['ms']:.1f}",
            f"{row['epoch_s']:.1f}",
            f"{row['ratio_vs_plain']:.2f}",
            "-",
        ]
    assert rows[2]["ratio_vs_plain"] == 1.0


def test_without_torch_the_numpy_engine_is_timed_alone(
    tiny_fashion: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """torch absent: one engine, no ratios, and a line that says why."""
    from cnnlab.train.loop.engines.numpy_engine import NumpyEngine

    calls: list[int] = []

    def fake_step(self: Any, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float]:
        calls.append(len(xb))  # no arithmetic
        return 0.0, 0.0

    monkeypatch.setattr(NumpyEngine, "train_step", fake_step)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # torch absent: NumPy engine only
    from cnnlab.cli.bench_recipe import WARMUP, run_recipe

    lines: list[str] = []
    rows = run_recipe(
        "fashion", steps=1, rounds=3, data_dir=str(tiny_fashion), print_fn=lines.append, memory=False
    )
    assert len(calls) == WARMUP + 3
    assert [r["engine"] for r in rows] == ["numpy"]
    assert all(np.isnan(r["ratio_vs_plain"]) for r in rows)
    assert "torch not installed: no torch lines, no ratios (pip install 'cnnlab[torch]')" in lines


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--recipe", "nope"],
         "unknown recipe 'nope'. Valid recipes: fashion, fashion-fast, fashion-torch, digits, resnet"),
        (["--recipe", "digits", "--lines", "numpy,jax"],
         "bench: argument `--lines` must be distinct names from numpy, numpy-serial, torch, torch-nchw, "
         "torch-serial, torch-compile, plain. Received: --lines='numpy,jax'"),
        (["--compile"], "--compile: only with --recipe NAME (time a recipe's training steps)"),
        (["--recipe", "digits", "--steps", "0"],
         "bench: argument `--steps` must be a positive int. Received: --steps=0"),
        (["--recipe", "digits", "--rounds", "0"],
         "bench: argument `--rounds` must be a positive int. Received: --rounds=0"),
        (["--recipe", "digits", "--batches", "32", "--profile"],
         "--recipe digits: --batches, --profile belong to the model benchmark; the recipe sets the model "
         "and the batch size (drop them)"),
        (["--steps", "3"], "--steps: only with --recipe NAME (time a recipe's training steps)"),
        (["--recipe", "digits", "--data-dir", "/no/such/folder"],
         "train: argument `data_dir` must be an existing folder (/no/such/folder does not exist)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = cli(capsys, "bench", *argv)
    assert code == 1 and out == ""
    assert len(err) == 1 and err[0].startswith(E + message), err


def test_missing_data_is_one_line_saying_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = cli(capsys, "bench", "--recipe", "fashion", "--data-dir", str(empty))
    assert code == 1 and out == ""
    cache = tmp_path / "cache" / "cnnlab" / "fashion-mnist"
    assert err == [
        f"{E}--recipe fashion: the fashion-mnist files are not in {empty}, {empty / 'fashion-mnist'}, "
        f"{cache}, {tmp_path / 'usr-share'} (cnnlab bench does not download). Get them with "
        "`apt-get install dataset-fashion-mnist` or "
        "`python -c \"from cnnlab.data import load_dataset; load_dataset('fashion-mnist')\"` "
        f"(downloads them to {cache}), or pass --data-dir FOLDER"
    ]


def test_resnet_lines_time_the_plain_script_and_report_peak_memory(
    torch: Any, tiny_fashion: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    """``--recipe resnet``: the fashion recipe with the zoo resnet; the plain script's steps
    are real steps of its own loop; each line's peak memory comes from a fresh process."""
    from cnnlab.cli import bench_plain_torch, bench_recipe

    steps: list[tuple[int, ...]] = []
    real_augment = bench_plain_torch.augment

    def spy(xb: Any, *args: Any) -> Any:
        out = real_augment(xb, *args)
        assert out.shape == xb.shape
        steps.append(tuple(out.shape))
        return out

    monkeypatch.setattr(bench_plain_torch, "augment", spy)
    monkeypatch.setattr(bench_recipe, "peak_rss_mb", lambda name, line, data_dir: 100.0 + len(line))
    lines: list[str] = []
    rows = bench_recipe.run_recipe(
        "resnet", steps=1, rounds=2, data_dir=str(tiny_fashion), print_fn=lines.append,
        lines=("torch-nchw", "plain"),
    )  # fmt: skip
    assert lines[0].startswith("recipe resnet: resnet() on fashion-mnist 1x28x28, batch 128, adam lr 0.003")
    assert steps == [(36, 1, 28, 28)] * (3 + 2)  # warm-up, then 2 rounds of 1 step
    assert [(r["engine"], r["peak_rss_mb"]) for r in rows] == [("torch-nchw", 110.0), ("plain", 105.0)]
    assert lines[-1].split()[-1] == "105"


def test_peak_rss_of_a_line_comes_from_a_fresh_process(tiny_fashion: Path) -> None:
    from cnnlab.cli.bench_recipe import peak_rss_mb

    assert 20 < peak_rss_mb("fashion", "numpy", str(tiny_fashion)) < 4000


def test_the_compile_line_runs_the_compiled_module_and_says_how_long_compiling_took(
    torch: Any, tiny_fashion: Path, monkeypatch: Any
) -> None:
    import time

    from cnnlab.cli.bench_recipe import WARMUP, run_recipe

    calls: list[int] = []

    class Compiled:  # torch.compile's stand-in: the first call "compiles" for 50 ms
        def __init__(self, module: Any) -> None:
            self.module = module

        def __call__(self, x: Any) -> Any:
            if not calls:
                time.sleep(0.05)
            calls.append(len(x))
            return self.module(x)

        def train(self, mode: bool = True) -> Any:
            return self.module.train(mode)

    monkeypatch.setattr(torch, "compile", Compiled)
    lines: list[str] = []
    rows = run_recipe(
        "fashion", steps=1, rounds=1, data_dir=str(tiny_fashion), print_fn=lines.append,
        lines=("torch-compile",), memory=False,
    )  # fmt: skip
    assert len(calls) == WARMUP + 1
    assert rows[0]["compile_s"] >= 0.05
    assert (
        lines[-1]
        == f"torch-compile: torch.compile took {rows[0]['compile_s']:.1f} s in the warm-up (not timed)"
    )
