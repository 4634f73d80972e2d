"""`cnnlab dashboard` and `cnnlab train --dashboard` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from sigint_child import cnnlab_command

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = dict(os.environ, PYTHONPATH=SRC, PYTHONUNBUFFERED="1")


def cnnlab(*args: str) -> subprocess.Popen:
    command = cnnlab_command(*args)  # takes Ctrl-C even when pytest runs with SIGINT ignored
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float = 90.0) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"exited ({proc.wait()}) before {pattern!r}: {seen} {err}")
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no {pattern!r} within {timeout} s: {seen}")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dashboard_command_serves_until_ctrl_c(runs_root):
    proc = cnnlab("dashboard", str(runs_root), "--port", "0")
    try:
        url = wait_for_line(proc, r"serving .* at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)").group(1)
        assert "done" in [r["run"] for r in get_json(url + "api/runs")["runs"]]
    finally:
        code = stop(proc)
    assert code == 0


def test_dashboard_command_refuses_a_missing_folder_and_bad_port(tmp_path):
    missing = cnnlab("dashboard", str(tmp_path / "nope"))
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and "is not a folder" in err
    bad = cnnlab("dashboard", str(tmp_path), "--port", "70000")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and "`port` must be in 0..65535" in err


def test_train_with_dashboard_serves_the_run_and_keeps_serving_after(tmp_path):
    out = tmp_path / "runs" / "watched"
    proc = cnnlab(
        "train",
        "--epochs",
        "1",
        "--model",
        "small",
        "--out",
        str(out),
        "--quiet",
        "--no-plots",
        "--dashboard",
    )
    try:
        url = wait_for_line(proc, r"^dashboard: (http://127\.0\.0\.1:\d+/)#run=watched").group(1)
        assert get_json(url + "api/runs")["root"] == "runs"
        wait_for_line(proc, r"^dashboard: still serving at ")
        rows = get_json(url + "api/runs")["runs"]
        assert [(r["run"], r["status"]) for r in rows] == [("watched", "done")]
    finally:
        code = stop(proc)
    assert code == 0
    assert (out / "model.npz").is_file()


def test_a_ctrl_c_the_moment_the_serving_line_shows_stops_cleanly(monkeypatch, capsys):
    # The race the CLI tests above can hit on a busy machine: SIGINT right after the line is
    # printed, before the wait began. It must stop the server, not escape as exit status 130.
    import threading

    from cnnlab.dashboard.server import wait_for_ctrl_c

    class FakeServer:
        def __init__(self) -> None:
            self.stopped = threading.Event()
            self.thread = threading.Thread(target=self.stopped.wait, daemon=True)
            self.thread.start()

        def stop(self) -> None:
            self.stopped.set()
            self.thread.join()

    def interrupted_print(*args, **kwargs):
        raise KeyboardInterrupt

    server = FakeServer()
    monkeypatch.setattr("builtins.print", interrupted_print)
    wait_for_ctrl_c(server, "serving at http://127.0.0.1:1/")  # returns: no KeyboardInterrupt
    assert server.stopped.is_set() and not server.thread.is_alive()
