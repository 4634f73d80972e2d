"""How the suite is run (issue 23, items 22 and 23): the README's test command, pytest's
summary line under a user's `-q`, CI's second pass in a random order with its seed, and the
Ctrl-C tests when pytest itself runs with SIGINT ignored (see tests/sigint_child.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_users_q_still_shows_the_summary_line(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
    command += ["-p", "no:randomly", "-p", "no:cacheprovider", "-q", str(tmp_path / "test_one.py")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^1 passed in ", done.stdout, flags=re.M), done.stdout  # -q -q hid it


def test_the_readme_says_how_to_get_the_cpu_build_of_torch() -> None:
    readme = (ROOT / "README.md").read_text()
    tests = readme.split("Run the tests", 1)[1].split("##", 1)[0]
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in tests
    assert 'torch = ["torch==2.13.0"]' in (ROOT / "pyproject.toml").read_text()  # one version in both


def test_ci_runs_the_suite_in_the_default_and_in_a_printed_random_order() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    test_extra = pyproject.split("\ntest = [", 1)[1].split("]", 1)[0]  # the `test` extra's list
    assert re.search(r'^\s+"pytest-randomly\b', test_extra, flags=re.M), test_extra
    ci = (ROOT / ".ci" / "run").read_text()
    runs = [line for line in ci.splitlines() if re.match(r"(\S+=\S+ )*python -m pytest\b", line)]
    assert any("-p no:randomly" in line for line in runs)
    shuffled = [line for line in runs if '-p randomly --randomly-seed="$SEED"' in line]
    assert shuffled, runs
    assert re.search(r'^echo ".*seed \$SEED', ci, flags=re.M)  # printed before the run


#: pytest with SIGINT ignored, as a background job of a non-interactive shell starts it.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
CTRL_C_TESTS = [
    "tests/train/test_train_options.py::test_ctrl_c_inside_the_first_checkpoint_write_waits_for_it",
    "tests/dashboard/test_dashboard_cli.py::test_dashboard_command_serves_until_ctrl_c",
]


def test_the_ctrl_c_tests_pass_under_a_pytest_that_ignores_sigint() -> None:
    # Their children inherited the ignored SIGINT: train ran to the end (0, not 130) and the
    # dashboard kept serving; they passed only after a test that set a SIGINT handler.
    command = [sys.executable, "-c", IGNORING_SIGINT, "-m", "pytest", "-p", "no:randomly"]
    command += ["-p", "no:cacheprovider", "-q", *CTRL_C_TESTS]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"^2 passed in ", done.stdout, flags=re.M), done.stdout[-2000:]
