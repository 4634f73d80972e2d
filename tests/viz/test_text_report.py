"""A text run's plots and report.html: its test texts are read, the most confident mistakes are
shown as text with the words that decided highlighted (issue 27)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli.text_cmds import load_text_model
from cnnlab.data.text import load_text
from cnnlab.explain.text_cam import text_grad_cam
from cnnlab.viz.report import write_report
from cnnlab.viz.run_plots import plot_run
from cnnlab.viz.text_report import TEXT_MISTAKES_FILE, highlighted_html
from text_data import reviews, train_text

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("text_report")
    return train_text(reviews(tmp / "reviews"), tmp / "run", 1, "--no-plots")  # 1 epoch: some mistakes


def test_plot_reads_the_test_texts_and_writes_the_mistakes(run: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot load the test split" any more
        written = {p.name for p in plot_run(run, tsne=False)}
    assert {
        TEXT_MISTAKES_FILE,
        "feature_space_pca.png",
        "learning_curves.png",
        "confusion_matrix.png",
    } <= written
    data = json.loads((run / "plots" / TEXT_MISTAKES_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert data["test_texts"] == metrics["num_examples"] == 16
    assert data["mistakes"] == round(16 * (1 - metrics["test_accuracy"])) > 0
    shown = data["shown"]
    assert len(shown) == min(data["mistakes"], 9)
    assert [r["confidence"] for r in shown] == sorted((r["confidence"] for r in shown), reverse=True)
    # Each row is the test text as the run read it, with the Grad-CAM that `show --cam` computes.
    model, extra, encoder = load_text_model(str(run))
    splits = load_text(json.loads((run / "config.json").read_text(encoding="utf-8"))["data"])
    first = shown[0]
    text = splits.test_texts[first["index"]]
    ids, lengths = encoder.encode([text])
    assert first["tokens"] == encoder.tokens([text])[0][: lengths[0]]
    assert first["true"] == splits.classes[splits.y_test[first["index"]]] != first["pred"]
    expected = text_grad_cam(model, ids, extra["classes"].index(first["pred"]), int(lengths[0]))
    np.testing.assert_allclose(first["weights_pred"], expected, atol=1e-3)
    assert max(first["weights_pred"]) == 1.0 and len(first["weights_true"]) == len(first["tokens"])


def test_report_shows_the_mistakes_as_highlighted_text(run: Path) -> None:
    page = write_report(run, tsne=False).read_text(encoding="utf-8")
    assert "<h2>Most confident mistakes: the words that decided</h2>" in page
    assert page.count('<div class="mistake">') == len(
        json.loads((run / "plots" / TEXT_MISTAKES_FILE).read_text(encoding="utf-8"))["shown"]
    )
    assert (
        "words that decided: " in page and 'class="tok" style="background: rgba(220, 40, 20, 0.85)"' in page
    )
    assert "<h2>Grad-CAM</h2>" not in page and "<h2>Filters</h2>" not in page  # image-only sections
    assert "&lt;" in page and "<b>☺" not in page  # the texts' '<b>' is escaped, never markup


def test_highlighted_html_escapes_and_scales() -> None:
    html = highlighted_html(["<i>", "ok"], [0.5, 0.0])
    assert html.startswith(
        '<span class="tok" style="background: rgba(220, 40, 20, 0.42)" title="0.50">&lt;i&gt;'
    )
    assert "<i>" not in html


def test_train_writes_the_report_of_a_text_run(tmp_path: Path) -> None:
    run = train_text(reviews(tmp_path / "reviews", per_class=10), tmp_path / "run")
    assert (run / "report.html").is_file() and (run / "plots" / TEXT_MISTAKES_FILE).is_file()
