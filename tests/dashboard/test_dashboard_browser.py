"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

Skipped (with the reason) only when Chromium or Playwright is missing and CI is not set; in
CI (CI=true) a missing browser fails. The server is uvicorn on a free port of 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import IN_CI, predict_path_probabilities

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI installs it; see .ci/run)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _require(os.path.exists(CHROMIUM), "chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "playwright is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(20_000)
    page.errors = []  # console errors and uncaught exceptions, checked by the tests
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    page.close()


def test_page_loads_with_the_runs_table_and_no_console_errors(page, server):
    page.goto(server.url + "#run=done")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#runs tbody tr[data-run='done']")
    page.wait_for_selector("#chart-loss circle.pt")
    assert page.locator("#confusion table tbody tr").count() == 10
    assert page.locator("#per-class .bar-row").count() == 10
    page.click("#runs th[data-key='test_accuracy']")  # sortable
    assert page.locator("#runs th.sorted-asc").inner_text().startswith("test acc")
    page.click("#features-form button[type='submit']")
    page.wait_for_selector("#features figure img")
    assert page.locator("#features figure").count() == 5  # the image + 4 conv/pool outputs
    assert page.errors == []


def test_a_curve_gains_points_while_a_run_trains(page, server, runs_root):
    """The page is open (run pending) before the run starts: every point must arrive live."""
    out = runs_root / "live"
    page.goto(server.url + "#run=live")  # as `train --dashboard` does: the URL comes first
    page.wait_for_selector("#run-status:has-text('waiting for the run')")
    page.evaluate("window.notReloaded = true")
    dots = "#chart-loss circle.pt[data-series='train loss']"
    assert page.locator(dots).count() == 0
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "cnnlab", "train", "--epochs", "3", "--model", "small"]
    command += ["--batch-size", "64", "--out", str(out), "--quiet", "--no-plots"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        count = "([sel, n]) => document.querySelectorAll(sel).length > n"  # no eval: the CSP forbids it
        page.wait_for_function(count, arg=[dots, 0], timeout=60_000, polling=100)
        page.wait_for_function(count, arg=[dots, 2], timeout=60_000)
        assert page.evaluate("window.notReloaded") is True  # pushed by the event stream
        page.wait_for_selector("#run-status:has-text('done')", timeout=60_000)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert page.errors == []


def test_strokes_on_the_pad_give_what_cnnlab_predict_gives(page, server, runs_root, tmp_path):
    page.goto(server.url + "#run=done")
    page.wait_for_selector("body[data-ready='1']")
    page.locator("#pad").scroll_into_view_if_needed()
    box = page.locator("#pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    for i, ((ax, ay), (bx, by)) in enumerate([((140, 40), (140, 240)), ((100, 80), (140, 40))]):  # a "1"
        page.mouse.move(x0 + ax, y0 + ay)
        page.mouse.down()
        page.mouse.move(x0 + bx, y0 + by, steps=12)
        page.mouse.up()  # each stroke sends the pad
        page.wait_for_function("(n) => window.cnnlab.answers === n", arg=i + 1)
    sent, shown = page.evaluate("[window.cnnlab.lastUpload, window.cnnlab.lastPrediction]")
    image = tmp_path / "drawn.png"
    image.write_bytes(base64.b64decode(sent))  # the exact bytes the page posted
    expected = predict_path_probabilities(runs_root / "done", image)
    np.testing.assert_allclose(shown["probabilities"], expected, rtol=0, atol=1e-5)
    top1 = str(int(np.argmax(expected)))
    assert shown["top"][0]["class"] == top1
    assert page.locator("#top1").get_attribute("data-class") == top1
    cli = subprocess.run(
        [sys.executable, "-m", "cnnlab", "predict", str(runs_root / "done"), str(image), "--top-k", "10"],
        env=dict(os.environ, PYTHONPATH=SRC),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    printed = dict(item.rsplit(" ", 1) for item in cli.stdout.split(": ", 1)[1].strip().split(", "))
    assert next(iter(printed)) == top1
    for name, value in printed.items():
        assert abs(float(value) - expected[int(name)]) <= 5e-4  # printed with 3 decimals
    assert shown["cam"] is not None and len(shown["cam"]) == 8
    assert page.errors == []


def test_path_traversal_is_refused_from_the_page(page, server):
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']")
    statuses = page.evaluate(
        """async () => Promise.all([
            "/files/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
            "/files/done/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "/files/%2Fetc%2Fpasswd",
            "/api/run?name=..%2F..",
            "/api/run?name=%2Fetc",
        ].map(async (u) => {
            const r = await fetch(u);
            return [r.status, (await r.text()).includes("root:")];
        }))"""
    )
    assert statuses == [[404, False]] * 5


def test_accuracies_read_alike_and_a_1000_class_run_renders_its_summary(page, tmp_path):
    from dashboard_helpers import big_run

    from cnnlab.dashboard.server import BackgroundServer

    big_run(tmp_path)  # best validation accuracy 1.0 (JSON: 1), 1000 classes
    server = BackgroundServer(tmp_path, port=0).start()
    try:
        page.goto(server.url + "#run=big")
        page.wait_for_selector("#runs tbody tr[data-run='big']")
        js = "() => [fmt(1, 'best_val_accuracy'), fmt(0.9806, 'test_accuracy'), fmt(3, 'epochs')]"
        shown = page.evaluate(js)
        assert shown == ["100.00%", "98.06%", "3"]  # was "1" beside "98.06%"
        cells = page.locator("#runs tbody tr[data-run='big'] td").all_inner_texts()
        heads = page.locator("#runs thead th").all_inner_texts()
        assert cells[next(i for i, h in enumerate(heads) if h.startswith("best val acc"))] == "100.00%"
        page.wait_for_selector("#confusion img.heatmap")  # a million cells took ~1 min to lay out
        assert page.locator("#confusion table.top-confusions tbody tr").count() == 20
        assert page.locator("#confusion td").count() == 80  # 20 rows of 4, no 1000 x 1000 table
        assert page.locator("#per-class .bar-row").count() == 20  # the least accurate
        assert page.errors == []
    finally:
        server.stop()
