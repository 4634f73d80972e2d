"""A model brought in by ``cnnlab import`` in the dashboard (issue 26): no dataset, any class count.

Its config.json named the default dataset (digits), so the feature panel fed 1x8x8 digits to
a 3x32x32 ResNet (HTTP 500), and the try-it pad labelled its 5 outputs with 10 class names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dashboard_helpers import png_bytes

from cnnlab.cli.main import main
from cnnlab.interop.onnx import to_onnx
from cnnlab.models import build_model


@pytest.fixture
def imported(tmp_path: Path, torch: Any) -> Path:
    pytest.importorskip("onnx")
    model = build_model("small", input_size=(12, 12), num_classes=5, in_channels=3, rng=0)
    to_onnx(model.eval(), tmp_path / "m.onnx", input_shape=(3, 12, 12))
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "runs" / "imported")]) == 0
    return tmp_path / "runs"


def test_an_imported_run_has_no_dataset_and_its_own_class_count(imported: Path) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    from cnnlab.dashboard.app import create_app

    client = testclient.TestClient(create_app(imported))
    features = client.get("/api/features", params={"run": "imported", "index": 0})
    assert features.status_code == 409
    assert "names no dataset (an imported model?)" in features.json()["error"]
    image = png_bytes((np.random.default_rng(0).random((12, 12, 3)) * 255).astype(np.uint8))
    answer = client.post("/api/predict", params={"run": "imported"}, content=image)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["classes"] == ["0", "1", "2", "3", "4"] and len(body["probabilities"]) == 5
