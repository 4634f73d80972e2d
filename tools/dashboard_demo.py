"""Measure the dashboard during a real training run and take its README screenshots.

Starts ``cnnlab train --dashboard`` (Fashion-MNIST by default) in a subprocess, opens the
printed URL in headless Chromium (Playwright, Debian's /usr/bin/chromium) and reports:

- page load: navigation start -> the runs table and the run's curves are on the page;
- update latency per epoch: history.csv written (its mtime) -> the new point is in the
  loss chart's SVG (a MutationObserver stamps the time in the page; same machine clock).

Then draws on the try-it pad and saves PNG screenshots (runs table, curves, evaluation,
try-it panel) under ``--screenshots``. Usage::

    PYTHONPATH=src python tools/dashboard_demo.py --runs /tmp/demo-runs --screenshots docs/images \\
        -- --data fashion-mnist --model small --epochs 2
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OBSERVER = """() => {
  window.pointTimes = [];
  const chart = document.getElementById("chart-loss");
  const count = () => chart.querySelectorAll("circle.pt[data-series='train loss']").length;
  let last = count();
  new MutationObserver(() => {
    const n = count();
    if (n > last) { window.pointTimes.push([n, Date.now() / 1000]); last = n; }
  }).observe(chart, { childList: true, subtree: true });
}"""


def test_image(run_dir: Path, index: int = 0) -> Path:
    """Test image ``index`` of the run's dataset as a PNG (for the upload button)."""
    import json

    import numpy as np
    from PIL import Image

    from cnnlab.data import load_dataset

    config = json.loads((run_dir / "config.json").read_text())
    x = load_dataset(config["data"], root=config.get("data_dir")).test.x[index]  # (C, H, W) in [0, 1]
    pixels = (x.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    path = Path(tempfile.gettempdir()) / f"cnnlab-test-image-{index}.png"
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", required=True, help="runs folder (the run goes to RUNS/<name>)")
    parser.add_argument("--name", default="fashion-small", help="run folder name")
    parser.add_argument("--screenshots", default=None, help="folder for the PNG screenshots")
    parser.add_argument("--attach", default=None, help="URL of a running `train --dashboard`; start none")
    parser.add_argument("train_args", nargs="*", help="cnnlab train options (after --)")
    args = parser.parse_args()
    train_args = args.train_args or ["--data", "fashion-mnist", "--model", "small", "--epochs", "2"]
    out = Path(args.runs) / args.name
    command = [sys.executable, "-m", "cnnlab", "train", *train_args]
    command += ["--out", str(out), "--quiet", "--dashboard"]
    proc = None
    url = args.attach
    if url is None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            print("train:", line.rstrip())
            match = re.match(r"dashboard: (\S+)", line)
            if match:
                url = match.group(1)
                break
    if url is None:
        return 1

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.wait_for_selector("#runs tbody tr", timeout=60_000)
        load = page.evaluate("performance.now()") / 1000
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
        print(f"page load: {load:.3f} s to the table and curves (load event {nav:.3f} s)")
        page.evaluate(OBSERVER)
        history = out / "history.csv"
        written: dict[int, float] = {}
        while True:
            try:
                rows = len(history.read_text().strip().splitlines()) - 1
                written.setdefault(rows, history.stat().st_mtime)
            except OSError:
                pass
            if (out / "metrics.json").exists() or (proc is not None and proc.poll() is not None):
                break
            time.sleep(0.05)
        page.wait_for_selector("#run-status:has-text('done')", timeout=120_000)
        for n, shown in page.evaluate("window.pointTimes"):
            if n in written:
                print(f"epoch {n}: history.csv written -> point on the page: {shown - written[n]:.3f} s")
        if args.screenshots:
            shots = Path(args.screenshots)
            shots.mkdir(parents=True, exist_ok=True)
            page.locator("#features-form button[type='submit']").click()
            page.wait_for_selector("#features figure img")
            pad = page.locator("#pad")
            pad.scroll_into_view_if_needed()
            box = pad.bounding_box()
            assert box is not None
            for (ax, ay), (bx, by) in [
                ((110, 40), (95, 250)),
                ((170, 40), (185, 250)),
                ((110, 40), (170, 40)),
            ]:
                page.mouse.move(box["x"] + ax, box["y"] + ay)
                page.mouse.down()
                page.mouse.move(box["x"] + bx, box["y"] + by, steps=10)
                page.mouse.up()
                time.sleep(0.5)
            page.wait_for_function("() => window.cnnlab.answers >= 3", timeout=30_000)
            cam = page.evaluate("window.cnnlab.lastPrediction.cam")
            if not cam or max(max(row) for row in cam) <= 0:  # no heat to show: upload a test image
                page.locator("#upload").set_input_files(str(test_image(out)))
                page.wait_for_function("() => window.cnnlab.answers >= 4", timeout=30_000)
            time.sleep(0.5)
            for name, selector in [
                ("dashboard-runs.png", "#runs-section"),
                ("dashboard-curves.png", "#run-section > .grid:nth-of-type(1)"),
                ("dashboard-evaluation.png", "#run-section > .grid:nth-of-type(2)"),
                ("dashboard-features.png", "#run-section > .grid:nth-of-type(3)"),
                ("dashboard-try-it.png", "#try-it"),
            ]:
                page.locator(selector).screenshot(path=str(shots / name))
                print("screenshot:", shots / name)
        print("console errors:", errors or "none")
        browser.close()
    if proc is not None and proc.stdout is not None:
        for line in proc.stdout:  # the run's last lines (report.html is written before this one)
            print("train:", line.rstrip())
            if line.startswith("dashboard: still serving"):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
