"""``import cnnlab`` changes nothing in the process; ``tune_process()`` makes the two settings.

Each check runs in a fresh interpreter (the settings are process-wide, and the test process
itself has trained before). The two effects are measured, not assumed: an OpenBLAS worker
that spins after a product burns CPU time while the only Python thread sleeps; freed arrays
that malloc hands back to the system cost page faults when the next step allocates again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from cnnlab.cli import main as cli_main
from cnnlab.process import Tuning, tune_process
from cnnlab.train.loop.engines import numpy_engine

SCRIPT = textwrap.dedent(
    """
    import ctypes, json, os, resource, sys, time
    import numpy as np

    # Record every foreign library cnnlab opens while it is imported (mallopt, OpenBLAS).
    opened = []
    real_cdll = ctypes.CDLL
    ctypes.CDLL = lambda *a, **k: opened.append(a[0] if a else None) or real_cdll(*a, **k)
    env_before = dict(os.environ)
    a = np.random.default_rng(0).random((512, 512))

    def idle_cpu_ms():
        # CPU time the process burns while its only Python thread sleeps right after a
        # product: a spinning OpenBLAS worker shows up here.
        a @ a
        t0 = time.process_time()
        time.sleep(0.2)
        return (time.process_time() - t0) * 1e3

    def faults():
        # A train step in miniature: four activation-sized arrays written and freed, 20 times
        # after 3 warm-up rounds; page faults per round.
        def step():
            arrays = [np.ones(12 << 18, np.float32) for _ in range(4)]  # 12 MiB each
            del arrays
        for _ in range(3):
            step()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            step()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20

    import cnnlab
    out = {
        "import_env_changed": sorted(k for k in set(os.environ) | set(env_before)
                                     if os.environ.get(k) != env_before.get(k)),
        "import_opened": [str(p) for p in opened],
        "import_spin": max(idle_cpu_ms() for _ in range(2)),
        "import_faults": faults(),
    }
    from threadpoolctl import threadpool_info
    out["blas_threads"] = max([i["num_threads"] for i in threadpool_info()
                               if i["internal_api"] == "openblas"] or [0])
    tuning = cnnlab.tune_process()
    out["changes"] = tuning.changes()
    out["malloc"] = tuning.malloc
    out["timeout"] = tuning.thread_timeout
    out["libraries"] = tuning.openblas_libraries
    out["env_timeout"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    out["tuned_spin"] = max(idle_cpu_ms() for _ in range(2))
    out["tuned_faults"] = faults()
    out["second_call"] = cnnlab.tune_process().changes()
    print(json.dumps(out))
    """
)


def _run(**env_extra: str) -> dict[str, Any]:
    drop = ("OPENBLAS_THREAD_TIMEOUT", "CNNLAB_TUNE_PROCESS", "GLIBC_TUNABLES")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MALLOC_")}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    pytest.importorskip("threadpoolctl")
    return _run()


linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
    reason="glibc's malloc and OpenBLAS's library on Linux only",
)


def test_import_cnnlab_changes_nothing_in_the_process(default: dict[str, Any]) -> None:
    assert default["import_env_changed"] == []  # no OPENBLAS_THREAD_TIMEOUT, nothing else
    assert default["import_opened"] == []  # no mallopt, no OpenBLAS thread shutdown


@linux_glibc
def test_tune_process_keeps_freed_memory(default: dict[str, Any]) -> None:
    assert default["import_faults"] > 50, default  # glibc's own thresholds: the faults show
    assert default["malloc"] is True
    assert default["tuned_faults"] < 5, default  # 12 MiB of fresh pages would be hundreds of faults


@linux_glibc
def test_tune_process_makes_openblas_workers_sleep(default: dict[str, Any]) -> None:
    if default["blas_threads"] < 2:
        pytest.skip("needs a multi-threaded OpenBLAS (NumPy's pip wheels)")
    # NumPy's OpenBLAS reads the new timeout back (openblas_thread_timeout()).
    assert default["timeout"] == default["env_timeout"] == "4"
    assert default["libraries"] >= 1 and default["changes"][0].startswith("OPENBLAS_THREAD_TIMEOUT=4 (")
    # Spinning workers burn up to the whole sleep (200 ms; less on a busy machine), sleeping
    # ones next to nothing.
    assert default["import_spin"] > 15, default  # after import alone they still spin
    assert default["tuned_spin"] < 10, default


def test_a_second_call_changes_nothing_more(default: dict[str, Any]) -> None:
    assert default["second_call"] == []


@pytest.mark.parametrize("value", ["0", " Off", "false", "no"])
def test_cnnlab_tune_process_0_turns_it_off(value: str) -> None:
    pytest.importorskip("threadpoolctl")
    off = _run(CNNLAB_TUNE_PROCESS=value)
    assert off["changes"] == [] and off["malloc"] is False and off["env_timeout"] is None
    if sys.platform.startswith("linux"):
        assert off["tuned_faults"] > 50, off  # malloc left as glibc has it


@linux_glibc
@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "4194304"},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"},
    ],
    ids=repr,
)
def test_malloc_settings_the_user_made_are_left_alone(env: dict[str, str]) -> None:
    pytest.importorskip("threadpoolctl")
    assert _run(**env)["malloc"] is False


@linux_glibc
def test_a_timeout_the_user_set_is_left_alone() -> None:
    pytest.importorskip("threadpoolctl")
    user = _run(OPENBLAS_THREAD_TIMEOUT="28")
    assert user["timeout"] is None and user["env_timeout"] == "28"
    if user["blas_threads"] >= 2:
        assert user["tuned_spin"] > 15, user  # still the user's long spin


def test_enabled_false_changes_nothing() -> None:
    assert tune_process(enabled=False) == Tuning()  # nothing made (the subprocess tests show the effects)


def test_the_training_commands_tune_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli_main, "tune_process", lambda: calls.append("tuned"))
    assert cli_main.main(["bench", "--models", "nope", "--profile"]) == 1  # refused after tuning
    assert calls == ["tuned"]
    cli_main.main(["summary", "nope"])  # inspecting a model does not tune
    assert calls == ["tuned"]


def test_the_numpy_engine_tunes_the_process_when_training_begins(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.layers.dense import Dense
    from cnnlab.layers.sequential import Sequential
    from cnnlab.losses import SoftmaxCrossEntropy
    from cnnlab.optim import SGD

    calls: list[str] = []
    monkeypatch.setattr(numpy_engine, "tune_process", lambda: calls.append("tuned"))
    model = Sequential(Dense(4, 2, rng=0))
    engine = numpy_engine.NumpyEngine(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1))
    assert calls == []
    engine.begin()
    assert calls == ["tuned"]
    engine.train_step(np.ones((3, 4), np.float32), np.array([0, 1, 0]))
    engine.end(True)
