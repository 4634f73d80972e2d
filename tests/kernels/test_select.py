"""Choosing the kernel tier (CNNLAB_KERNELS) and where the compiled tier caches its code."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.kernels import dispatch, numba_env, select
from cnnlab.layers.conv import Conv2D


def test_numpy_is_chosen_by_env(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    assert select.tier() == "numpy"
    assert not dispatch.use_compiled(
        (1, 3, 8, 8), np.zeros((4, 3, 3, 3), np.float32), (1,) * 4, (1, 1), (1, 1)
    )


def test_unknown_choice_gives_numpy_and_a_notice(monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_KERNELS", "fastest")
    assert select.tier() == "numpy"
    assert "CNNLAB_KERNELS='fastest' is not one of auto, numpy, compiled" in capsys.readouterr().err


def test_without_numba_everything_runs_on_numpy(monkeypatch, capsys):
    """What a user without the `fast` extra gets: NumPy, and a notice only if they asked."""
    monkeypatch.setattr(select, "compiled_available", lambda: False)
    monkeypatch.delenv("CNNLAB_KERNELS", raising=False)
    assert select.tier() == "numpy"
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    assert select.tier() == "numpy"
    assert "numba is not installed (pip install 'cnnlab[fast]')" in capsys.readouterr().err
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    y = layer.forward(np.ones((1, 2, 5, 5), np.float32))
    assert y.shape == (1, 3, 5, 5) and layer.backward(np.ones_like(y)).shape == (1, 2, 5, 5)


def test_cache_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert numba_env.cache_root() == tmp_path / "cnnlab"
    assert numba_env.numba_cache_dir() == tmp_path / "cnnlab" / "numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert numba_env.cache_root() == Path.home() / ".cache" / "cnnlab"


def test_a_first_run_compile_is_told_to_the_status_listeners(monkeypatch):
    """A progress bar hears when the kernels start compiling and when they are done."""
    import pytest

    pytest.importorskip("numba")
    from cnnlab.kernels import check, conv_codegen

    monkeypatch.setattr(check, "_verdicts", {})
    monkeypatch.setattr(conv_codegen, "is_cached", lambda mod: False)  # as on a first run
    heard: list[str | None] = []
    select.add_status_listener(heard.append)
    try:
        check._ensure_compiled(np.dtype(np.float32))
    finally:
        select.remove_status_listener(heard.append)
    assert heard == ["compiling the float32 kernels (first run, ~10 s)", None]


def test_a_conv_says_which_tier_its_last_forward_ran_on(monkeypatch):
    import pytest

    layer = Conv2D(16, 16, 3, padding=1, rng=0).astype(np.float32)
    assert layer.kernel_tier is None  # no forward yet
    x = np.random.default_rng(0).standard_normal((2, 16, 7, 7)).astype(np.float32)
    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    layer.forward(x)
    assert layer.kernel_tier == "numpy"
    pytest.importorskip("numba")
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    layer.forward(x)
    assert layer.kernel_tier == "compiled"
