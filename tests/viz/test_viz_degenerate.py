"""Projections of features that cannot be projected (issue 23, item 6).

scikit-learn's t-SNE crashed the process (segmentation fault, exit 139) on constant features,
so these run in a subprocess: a crash fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.viz.projection import MIN_TSNE_POINTS, projection_problem

pytest.importorskip("matplotlib")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_tsne_of_constant_features_is_refused_not_a_crash() -> None:
    pytest.importorskip("sklearn")
    code = (
        "import numpy as np\n"
        "from cnnlab.viz.projection import DegenerateFeatures, tsne_2d\n"
        "try:\n"
        "    tsne_2d(np.zeros((100, 128)))\n"
        "except DegenerateFeatures as exc:\n"
        "    print(exc)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.startswith("tsne_2d: the features are the same for all 100 images")


@pytest.mark.parametrize(
    ("features", "method", "expected"),
    [
        (np.full((50, 8), 3.0), "PCA", "the features are the same for all 50 images"),
        (np.full((50, 8), 1e-30) + 1e-300, "t-SNE", "the features are the same for all 50 images"),
        (np.where(np.eye(10, 8) > 0, np.nan, 1.0), "PCA", "the features of 8 of 10 images hold NaN"),
        (np.eye(MIN_TSNE_POINTS - 1, 8), "t-SNE", f"t-SNE needs at least {MIN_TSNE_POINTS} images; got 4"),
        (np.arange(20.0)[:, None], "t-SNE", "t-SNE needs at least 2 features per image; got 1"),
        (np.ones((1, 8)), "PCA", "a projection needs at least 2 images"),
    ],
)
def test_projection_problem_names_the_reason(features: np.ndarray, method: str, expected: str) -> None:
    assert (projection_problem(features, method) or "").startswith(expected)


def test_projection_problem_accepts_drawable_features() -> None:
    rng = np.random.default_rng(0)
    assert projection_problem(rng.normal(size=(30, 8)), "t-SNE") is None
    assert projection_problem(np.arange(20.0)[:, None], "PCA") is None


def test_cnnlab_plot_of_a_model_with_constant_features_skips_the_projections(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    # A model whose hidden layer is all zeros: every digit has the same penultimate features.
    model = cnnlab.Sequential(
        cnnlab.Flatten(), cnnlab.Dense(64, 16, rng=0), cnnlab.ReLU(), cnnlab.Dense(16, 10, rng=0)
    )
    model.layers[1].params["weight"][...] = 0
    model.layers[1].params["bias"][...] = 0
    run = tmp_path / "run"
    run.mkdir()
    extra = {"classes": [str(i) for i in range(10)], "input_shape": [1, 8, 8], "dataset": "digits"}
    cnnlab.save(model, run / "model.npz", extra=extra)
    (run / "config.json").write_text(json.dumps({"data": "digits"}))
    result = run_python(
        "import sys; from cnnlab.cli.main import main; sys.exit(main(sys.argv[1:]))", "plot", str(run)
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    for method in ("PCA", "t-SNE"):
        assert f"skipping the {method} projection: the features are the same for all" in result.stderr
    assert (run / "report.html").is_file()
    assert (run / "plots" / "misclassified.png").is_file()
    assert not (run / "plots" / "feature_space_tsne.png").exists()
