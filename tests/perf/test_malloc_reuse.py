"""After ``import cnnlab``, a freed array's memory serves the next one without page faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# A train step in miniature: allocate four activation-sized arrays, write them, free them all
# (glibc then trims its heap: the freed top is larger than its adaptive threshold); count the
# page faults of 20 rounds after 3 warm-up rounds.
SCRIPT = textwrap.dedent(
    """
    import json, resource
    import numpy as np
    import cnnlab  # noqa: F401
    from cnnlab import malloc_reuse

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def step():
        arrays = [np.ones(12 << 18, np.float32) for _ in range(4)]  # 12 MiB each
        del arrays

    for _ in range(3):
        step()
    before = faults()
    for _ in range(20):
        step()
    print(json.dumps({"applied": malloc_reuse.applied, "faults": (faults() - before) / 20}))
    """
)


def _run(env_extra: dict[str, str]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.pop("CNNLAB_KEEP_FREED_MEMORY", None)
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(autouse=True)
def _glibc_only():
    if not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
        pytest.skip("glibc's malloc on Linux only")


def test_freed_arrays_are_reused_without_page_faults():
    kept = _run({})
    assert kept["applied"] is True, kept
    assert kept["faults"] < 5, kept  # 12 MiB of fresh pages would be hundreds of faults
    system = _run({"CNNLAB_KEEP_FREED_MEMORY": "0"})  # glibc's own thresholds: what it was
    assert system["applied"] is False, system
    assert system["faults"] > 50, system  # the measurement sees the faults


@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "4194304"},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"},
        {"CNNLAB_KEEP_FREED_MEMORY": " Off"},
        {"CNNLAB_KEEP_FREED_MEMORY": "false"},
    ],
    ids=repr,
)
def test_malloc_settings_the_user_made_are_left_alone(env):  # and the opt-out's spellings
    assert _run(env)["applied"] is False
