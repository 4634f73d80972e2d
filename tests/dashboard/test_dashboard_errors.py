"""The dashboard away from home (issue 23): started in another folder than the run, a dataset
gone, an unexpected error, a 1000-class run, a host that does not resolve, a port in use."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from dashboard_helpers import big_run

from cnnlab.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def client_for(root: Path):
    from starlette.testclient import TestClient

    from cnnlab.dashboard.app import create_app

    return TestClient(create_app(root))


def image_folder(root: Path, classes: tuple[str, ...] = ("bag", "coat", "shoe"), per_class: int = 8) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((12, 12)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def relative_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``W/runs/r``: trained in folder W with ``--data clothes --out runs/r``, recorded relative."""
    work = tmp_path_factory.mktemp("w")
    image_folder(work / "clothes")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        argv = ["train", "--data", "clothes", "--model", "small", "--epochs", "1", "--out", "runs/r"]
        assert main([*argv, "--quiet", "--no-plots"]) == 0
    config_file = work / "runs" / "r" / "config.json"
    config = json.loads(config_file.read_text())  # as runs before issue 23 item 5 recorded them:
    config_file.write_text(json.dumps({**config, "data": "clothes", "out": "runs/r"}))  # relative
    return work


def test_feature_maps_of_a_run_with_a_relative_data_path_from_another_folder(
    relative_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the dashboard runs elsewhere: "clothes" is not here
    client = client_for(relative_run / "runs")
    response = client.get("/api/features", params={"run": "r", "index": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] > 0 and body["label"] in ("bag", "coat", "shoe") and body["layers"]


def test_a_dataset_that_is_gone_is_a_json_error_naming_it(
    relative_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    run = tmp_path / "runs" / "moved"
    shutil.copytree(relative_run / "runs" / "r", run)  # its "clothes" is not beside it
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "out": "runs/moved"}))
    (run / "model.npz").unlink()  # rebuilt from config.json and the dataset: needs the data too
    monkeypatch.chdir(tmp_path)
    client = client_for(tmp_path / "runs")
    response = client.get("/api/features", params={"run": "moved", "index": 0})
    assert response.status_code == 409
    assert response.json()["error"].startswith("cannot load the dataset of moved ('clothes'): ")


def test_an_unexpected_api_error_is_a_json_500_with_one_line_on_stderr(
    relative_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnlab.dashboard import models

    def broken(run_dir: Path, index: int) -> dict:
        raise RuntimeError("the probe broke")

    monkeypatch.setattr(models, "feature_maps", broken)
    client = client_for(relative_run / "runs")
    response = client.get("/api/features", params={"run": "r", "index": 0})  # raised before the fix
    assert response.status_code == 500
    assert response.json() == {"error": "/api/features failed: RuntimeError: the probe broke"}
    assert capsys.readouterr().err.splitlines() == [
        "cnnlab dashboard: error: /api/features failed: RuntimeError: the probe broke"
    ]


def test_a_1000_class_run_is_summarized_not_sent_cell_by_cell(tmp_path: Path) -> None:
    big_run(tmp_path)
    client = client_for(tmp_path)
    response = client.get("/api/run", params={"name": "big"})
    assert response.status_code == 200
    assert len(response.content) < 300_000, len(response.content)  # the full matrix: ~2 MB
    evaluation = response.json()["evaluation"]
    assert evaluation["summarized"] is True and evaluation["confusion_matrix"] is None
    assert evaluation["heatmap"].startswith("data:image/png;base64,")
    top = evaluation["top_confusions"]
    assert len(top) == 20
    assert top[0] == {"true": "n00000000", "predicted": "n00000001", "count": 2, "share": 0.6667}
    summary = evaluation["per_class_summary"]
    assert summary["classes"] == 1000 and len(summary["worst"]) == 20
    assert summary["worst"][0] == {"class": "n00000000", "accuracy": 0.3333, "images": 3}
    rows = client.get("/api/runs").json()["runs"]
    assert [(r["run"], r["best_val_accuracy"]) for r in rows] == [("big", 1.0)]


def test_a_host_that_does_not_resolve_is_one_message_naming_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", str(tmp_path), "--host", "bogus.invalid", "--port", "0"]) == 1
    _, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "--host 'bogus.invalid' cannot be resolved" in lines[0] and "port in use" not in lines[0]


def test_a_port_in_use_says_the_port_is_in_use(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 1
    _, err = capfd.readouterr()
    assert err.strip().splitlines() == [
        f"cnnlab dashboard: error: dashboard: port {port} on 127.0.0.1 is in use (another dashboard?); "
        "choose another with --port, or --port 0 for any free port"
    ]
