"""OpenBLAS's workers sleep after a product even when NumPy was imported before cnnlab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, time
    import numpy as np
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i["internal_api"] == "openblas"]
    a = np.random.default_rng(0).random((512, 512))

    def idle_cpu_ms():
        # CPU time the process burns while its only Python thread sleeps right after a product:
        # a spinning OpenBLAS worker shows up here.
        a @ a
        t0 = time.process_time()
        time.sleep(0.2)
        return (time.process_time() - t0) * 1e3

    before = max(idle_cpu_ms() for _ in range(2))
    import cnnlab  # noqa: E402,F401

    after = max(idle_cpu_ms() for _ in range(2))
    threads = blas[0]["num_threads"] if blas else 0
    print(json.dumps({"threads": threads, "before": before, "after": after}))
    """
)


def _run(env_extra: dict[str, str]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_cnnlab_after_numpy_stops_spinning_openblas_workers():
    pytest.importorskip("threadpoolctl")
    first = _run({})
    if first["threads"] < 2 or not sys.platform.startswith("linux"):
        pytest.skip("needs a multi-threaded OpenBLAS on Linux (NumPy's pip wheels)")
    # Spinning workers burn ~the whole sleep (200 ms); sleeping ones next to nothing.
    assert first["before"] > 40, first  # the measurement sees the spin
    assert first["after"] < 20, first


def test_a_timeout_the_user_set_is_left_alone():
    pytest.importorskip("threadpoolctl")
    user = _run({"OPENBLAS_THREAD_TIMEOUT": "28"})
    if user["threads"] < 2 or not sys.platform.startswith("linux"):
        pytest.skip("needs a multi-threaded OpenBLAS on Linux (NumPy's pip wheels)")
    assert user["after"] > 40, user  # still the user's long spin
