"""The dashboard's HTTP API: Starlette's TestClient, and raw requests to a real uvicorn server."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from dashboard_helpers import png_bytes, predict_path_probabilities

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def client(runs_root):
    from starlette.testclient import TestClient

    from cnnlab.dashboard.app import create_app

    return TestClient(create_app(runs_root))


def raw_get(server, target: str) -> tuple[int, bytes]:
    """GET ``target`` byte for byte as given (no client-side ``..`` clean-up)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_page_and_assets_are_served_without_external_urls(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200
        assert "http://" not in response.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in response.text
    assert "https://" not in page.text and "http://" not in page.text
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/data.py").status_code == 404


def test_runs_table_and_run_details(client):
    runs = client.get("/api/runs").json()["runs"]
    row = next(r for r in runs if r["run"] == "done")
    assert row["status"] == "done" and row["epochs_done"] == 1 and row["model"] == "small"
    assert 0.0 <= row["test_accuracy"] <= 1.0
    details = client.get("/api/run", params={"name": "done"}).json()
    assert len(details["history"]) == 1
    evaluation = details["evaluation"]
    cm = np.array(evaluation["confusion_matrix"])
    assert cm.shape == (10, 10) and evaluation["classes"] == [str(i) for i in range(10)]
    np.testing.assert_allclose(evaluation["per_class_accuracy"], np.diag(cm) / cm.sum(axis=1))
    assert {"model.npz", "config.json", "history.csv", "metrics.json"} <= set(details["files"])


def test_feature_maps_of_a_test_image(client, runs_root):
    from cnnlab.data import load_dataset

    body = client.get("/api/features", params={"run": "done", "index": 7}).json()
    assert body["source"] == "model.npz" and body["index"] == 7 and body["count"] == 360
    assert body["label"] == str(load_dataset("digits").test.y[7])
    assert [layer["shape"] for layer in body["layers"]] == [[32, 8, 8], [32, 4, 4], [64, 4, 4], [64, 2, 2]]
    assert all(layer["png"].startswith("data:image/png;base64,") for layer in body["layers"])
    assert client.get("/api/features", params={"run": "done", "index": "x"}).status_code == 400


def test_predict_agrees_with_cnnlab_predict(client, runs_root, tmp_path):
    rng = np.random.default_rng(0)
    pixels = np.zeros((40, 40), np.uint8)
    pixels[5:35, 17:23] = 255  # a "1"
    pixels += rng.integers(0, 30, size=pixels.shape, dtype=np.uint8)
    data = png_bytes(pixels)
    body = client.post("/api/predict", params={"run": "done", "top_k": 3}, content=data).json()
    image = tmp_path / "one.png"
    image.write_bytes(data)
    expected = predict_path_probabilities(runs_root / "done", image)
    np.testing.assert_allclose(body["probabilities"], expected, rtol=0, atol=1e-12)
    assert [t["index"] for t in body["top"]] == list(np.argsort(-expected, kind="stable")[:3])
    cam = np.array(body["cam"])
    assert cam.shape == (8, 8) and cam.min() >= 0.0 and cam.max() <= 1.0 and cam.max() > 0.0


def test_a_large_upload_prints_no_warning_on_the_server(client):
    # A drawing is always reduced to the model's size; the page shows what the model saw, so the
    # terminal running `cnnlab train --dashboard` must not get a warning line per upload.
    import warnings

    data = png_bytes(np.full((280, 280), 200, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = client.post("/api/predict", params={"run": "done", "top_k": 3}, content=data)
    assert response.status_code == 200, response.text


def test_uploads_are_size_limited_and_decoded_only_as_images(client):
    from cnnlab.dashboard.models import MAX_UPLOAD_BYTES

    big = client.post("/api/predict", params={"run": "done"}, content=b"\0" * (MAX_UPLOAD_BYTES + 1))
    assert big.status_code == 413 and "upload too large" in big.json()["error"]
    for junk in (b"hello", b"GIF89a" + b"\0" * 20, b"\x89PNG\r\n\x1a\n" + b"\0" * 10):
        response = client.post("/api/predict", params={"run": "done"}, content=junk)
        assert response.status_code == 400, junk
        assert "PNG or JPEG" in response.json()["error"]
    empty = client.post("/api/predict", params={"run": "done"}, content=b"")
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buf, format="PNG")  # small file, 25 M pixels
    assert client.post("/api/predict", params={"run": "done"}, content=buf.getvalue()).status_code == 400
    assert client.get("/api/predict", params={"run": "done"}).status_code == 405
    assert client.post("/api/predict", params={"run": "nope"}, content=b"x").status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "/files/../../../../etc/passwd",
        "/files/done/../../../../../etc/passwd",
        "/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/files/done/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/files/%2Fetc%2Fpasswd",
        "/files//etc/passwd",
        "/files/done/..%5C..%5C..%5Cetc%5Cpasswd",
        "/api/run?name=..%2F..%2F..%2Fetc",
        "/api/run?name=%2Fetc",
        "/api/run?name=done%2F..%2F..",
        "/api/features?run=..&index=0",
        "/api/events?run=%2e%2e",
        "/static/..%2Fapp.py",
    ],
)
def test_paths_outside_runs_dir_are_404_on_a_real_server(server, target):
    status, body = raw_get(server, target)
    assert status == 404, target
    assert b"root:" not in body and b"import" not in body


def test_files_of_a_run_are_served_but_symlinks_out_are_not(server, runs_root, tmp_path):
    status, body = raw_get(server, "/files/done/config.json")
    assert status == 200 and json.loads(body)["model"] == "small"
    from starlette.testclient import TestClient

    from cnnlab.dashboard.app import create_app

    report = TestClient(create_app(runs_root)).get("/files/done/history.csv")
    assert report.headers["content-security-policy"] == "sandbox"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = runs_root / "done" / "leak.txt"
    os.symlink(secret, link)
    try:
        assert raw_get(server, "/files/done/leak.txt")[0] == 404
        assert raw_get(server, "/files/done/%2e%2e/done/config.json")[0] == 404
    finally:
        link.unlink()


def read_events(lines, until, timeout=20.0):
    """Read server-sent events from a stream's lines until ``until(events)`` or timeout."""
    events, event = [], {}
    deadline = time.monotonic() + timeout
    for line in lines:
        if line.startswith("event: "):
            event = {"event": line[7:]}
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
            events.append(event)
            if until(events):
                return events
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no matching event within {timeout} s: {[e['event'] for e in events]}")


def test_event_stream_sends_new_history_rows_and_survives_partial_files(server, runs_root):
    import httpx

    run = runs_root / "streamed"
    shutil.copytree(runs_root / "done", run, ignore=shutil.ignore_patterns("metrics.json"))
    try:
        with httpx.stream(
            "GET", server.url + "api/events", params={"run": "streamed"}, timeout=30
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            first = read_events(lines, lambda ev: any(e["event"] == "run" for e in ev))
            assert any(e["event"] == "runs" for e in first)
            history = run / "history.csv"
            text = history.read_text()
            row = text.splitlines()[-1].split(",")
            row[0] = "2"
            history.write_text(text + ",".join(row)[:9])  # a torn second row: ignored
            history.write_text(text + ",".join(row) + "\n")

            def has_two(events):
                return any(e["event"] == "run" and len(e["data"]["history"]) == 2 for e in events)

            events = read_events(lines, has_two)
            assert events[-1]["data"]["summary"]["status"] == "training"
    finally:
        shutil.rmtree(run)
    assert raw_get(server, "/api/runs")[0] == 200  # still serving


def test_a_run_still_training_is_served_from_its_checkpoint(client, runs_root):
    """Before its first model.npz a run has config.json + checkpoint.npz: the model is rebuilt
    from the config, the normalization from the training split, as `cnnlab train` does."""
    run = runs_root / "midway"
    shutil.copytree(runs_root / "done", run, ignore=shutil.ignore_patterns("model.npz", "metrics.json"))
    try:
        pixels = np.zeros((28, 28), np.uint8)
        pixels[4:24, 8:20] = 200
        data = png_bytes(pixels)
        from_ckpt = client.post("/api/predict", params={"run": "midway"}, content=data).json()
        final = client.post("/api/predict", params={"run": "done"}, content=data).json()
        assert (from_ckpt["source"], final["source"]) == ("checkpoint.npz", "model.npz")
        # one epoch: the checkpoint holds the final weights; float32 normalization sums may
        # differ in the last bits between the saved and the recomputed statistics
        np.testing.assert_allclose(from_ckpt["probabilities"], final["probabilities"], atol=1e-6)
        features = client.get("/api/features", params={"run": "midway", "index": 3}).json()
        assert features["source"] == "checkpoint.npz" and len(features["layers"]) == 4
        os.utime(run / "checkpoint.npz", (1, 1))  # a checkpoint older than model.npz is not used
        shutil.copy(runs_root / "done" / "model.npz", run / "model.npz")
        assert client.get("/api/features", params={"run": "midway"}).json()["source"] == "model.npz"
        (run / "model.npz").unlink()
        (run / "checkpoint.npz").write_bytes(b"PK\x03\x04 torn")  # being replaced / corrupt
        torn = client.get("/api/features", params={"run": "midway"})
        assert torn.status_code == 409 and "cannot read the weights" in torn.json()["error"]
        (run / "checkpoint.npz").unlink()
        missing = client.post("/api/predict", params={"run": "midway"}, content=data)
        assert missing.status_code == 409 and "no model.npz or checkpoint.npz yet" in missing.json()["error"]
    finally:
        shutil.rmtree(run)


def test_event_stream_waits_for_a_run_that_does_not_exist_yet(server, runs_root):
    """`train --dashboard` prints the page's URL before the run folder exists."""
    import httpx

    run = runs_root / "later"
    try:
        with httpx.stream("GET", server.url + "api/events", params={"run": "later"}, timeout=30) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            read_events(lines, lambda ev: any(e["event"] == "pending" for e in ev))
            shutil.copytree(runs_root / "done", run)
            events = read_events(lines, lambda ev: any(e["event"] == "run" for e in ev))
            assert events[-1]["data"]["summary"]["status"] == "done"
            shutil.rmtree(run)
            read_events(lines, lambda ev: any(e["event"] == "gone" for e in ev))
    finally:
        shutil.rmtree(run, ignore_errors=True)
